// Package smtpload drives SMTP load through a relay and counts what comes out the other side:
// a bounded load generator that records which messages the relay acknowledged, and a counting
// next-hop sink that records which arrived, how often and when. The demo, the benchmarks and the
// end-to-end tests use it so that "0 lost, 0 duplicated" is measured the same way everywhere.
//
// Every message carries a sequence number in the header SeqHeader. Traffic goes only to the
// loopback addresses given; every load run is bounded in count and in time.
package smtpload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// SeqHeader carries a message's sequence number.
const SeqHeader = "X-Relayfix-Seq"

// Loopback reports an error unless addr is a loopback host:port.
func Loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("address %q is not a loopback address", addr)
	}
	return nil
}

// Message builds the body of message seq, padded to about size bytes.
func Message(seq int, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <load@example.test>\r\nTo: <dst@sink.invalid>\r\nSubject: load message %d\r\n", seq)
	fmt.Fprintf(&b, "Message-ID: <%d.load@example.test>\r\n%s: %d\r\n\r\n", seq, SeqHeader, seq)
	const line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// LoadOptions describes one bounded load run.
type LoadOptions struct {
	Addr        string        // relay to send to (loopback)
	N           int           // messages to send, at most
	Concurrency int           // parallel connections (default 1)
	Size        int           // approximate body size in bytes (default 4096)
	FirstSeq    int           // sequence number of the first message
	Duration    time.Duration // stop sending after this long (default 2 minutes)
	Rate        float64       // messages per second over all connections; 0 = as fast as possible
	From, To    string        // envelope (defaults load@example.test, dst@sink.invalid)
	LocalAddr   string        // bind the client to this local IP (e.g. 127.0.0.2)
	// PerConn, when set, ends each connection with QUIT after this many messages and opens a
	// new one, so that connections are opened and closed all through the run.
	PerConn int
	// OnAck, when set, is called for every message the relay acknowledged with 250.
	OnAck func(seq int, reply string)
}

// LoadResult is what a load run observed.
type LoadResult struct {
	Sent, Acked, Rejected int // transactions attempted, answered 250, refused or failed
	ConnErrors            int // connections that could not be opened or broke
	Sessions              int // connections that were greeted with 220 and answered EHLO
	Acks                  map[int]string
	Latencies             []time.Duration // per acknowledged transaction, MAIL to 250 after DATA
	AckTimes              []time.Time     // when each of Latencies' transactions got its 250
	Elapsed               time.Duration
	FirstError            error
}

// MaxLatency returns the largest transaction latency.
func (r *LoadResult) MaxLatency() time.Duration {
	var m time.Duration
	for _, l := range r.Latencies {
		m = max(m, l)
	}
	return m
}

// Percentile returns the p-th percentile (0..100) of the transaction latencies.
func (r *LoadResult) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.Latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

// Load sends up to N messages to opts.Addr and returns what happened. It stops at N messages,
// after opts.Duration, or when ctx is done, whichever comes first.
func Load(ctx context.Context, opts LoadOptions) (*LoadResult, error) {
	if err := Loopback(opts.Addr); err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Size <= 0 {
		opts.Size = 4096
	}
	if opts.Duration <= 0 {
		opts.Duration = 2 * time.Minute
	}
	if opts.From == "" {
		opts.From = "load@example.test"
	}
	if opts.To == "" {
		opts.To = "dst@sink.invalid"
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()

	var next atomic.Int64
	var mu sync.Mutex
	res := &LoadResult{Acks: make(map[int]string)}
	var tick <-chan time.Time
	if opts.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *smtp.Client
			used := 0 // messages sent on c
			defer func() {
				if c != nil {
					c.Quit()
					c.Close()
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= opts.N {
					return
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				seq := opts.FirstSeq + i
				if c == nil {
					var err error
					c, err = dial(ctx, opts)
					if err != nil && ended(ctx) {
						return // the run ended while connecting: not the server's doing
					}
					if err != nil {
						mu.Lock()
						res.ConnErrors++
						res.Sent++
						res.Rejected++
						if res.FirstError == nil {
							res.FirstError = err
						}
						mu.Unlock()
						time.Sleep(10 * time.Millisecond)
						continue
					}
					used = 0
					mu.Lock()
					res.Sessions++
					mu.Unlock()
				}
				t0 := time.Now()
				reply, err := sendOne(c, opts, seq)
				lat := time.Since(t0)
				mu.Lock()
				res.Sent++
				if err != nil {
					res.Rejected++
					if res.FirstError == nil {
						res.FirstError = fmt.Errorf("message %d: %w", seq, err)
					}
					var se *smtp.SMTPError
					if !errors.As(err, &se) {
						res.ConnErrors++
					}
				} else {
					res.Acked++
					res.Acks[seq] = reply
					res.Latencies = append(res.Latencies, lat)
					res.AckTimes = append(res.AckTimes, t0.Add(lat))
				}
				mu.Unlock()
				if err != nil {
					c.Close()
					c = nil
					continue
				}
				if opts.OnAck != nil {
					opts.OnAck(seq, reply)
				}
				if used++; opts.PerConn > 0 && used >= opts.PerConn {
					c.Quit()
					c.Close()
					c = nil
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}

// ended reports whether ctx is done or past its deadline: a dial cut off by the deadline may
// return a moment before ctx says so.
func ended(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

func dial(ctx context.Context, opts LoadOptions) (*smtp.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if opts.LocalAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(opts.LocalAddr)}
	}
	conn, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", opts.Addr, err)
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	if err := c.Hello("load.example.test"); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO %s: %w", opts.Addr, err)
	}
	return c, nil
}

// sendOne runs one transaction on c. After a successful DATA the next MAIL needs no RSET;
// after a refusal the caller drops the connection.
func sendOne(c *smtp.Client, opts LoadOptions, seq int) (string, error) {
	if err := c.Mail(opts.From, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(opts.To, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(Message(seq, opts.Size)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// Sink is a counting next hop: an SMTP server on loopback that accepts every message and
// records its sequence number.
type Sink struct {
	srv   *smtp.Server
	ln    net.Listener
	mu    sync.Mutex
	got   map[int]int // seq -> times received
	noSeq int
	times []time.Time // arrival time of every message, in order
	// Reply, when set, decides the answer to each message by its sequence number (nil accepts).
	reply func(seq int) error
	keep  bool
	msgs  [][]byte // every message accepted, as received, when keep is set
}

// NewSink starts a sink listening on addr (e.g. "127.0.0.1:0").
func NewSink(addr string) (*Sink, error) {
	if err := Loopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink listen %s: %w", addr, err)
	}
	s := &Sink{ln: ln, got: make(map[int]int)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s}, nil
	}))
	s.srv.Domain = "sink.invalid"
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	go s.srv.Serve(ln)
	return s, nil
}

// SetReply installs a function that decides each message's answer (an *smtp.SMTPError to refuse).
func (s *Sink) SetReply(f func(seq int) error) {
	s.mu.Lock()
	s.reply = f
	s.mu.Unlock()
}

// Keep makes the sink keep every message it accepts from now on, for Messages.
func (s *Sink) Keep() {
	s.mu.Lock()
	s.keep = true
	s.mu.Unlock()
}

// Messages returns the messages accepted since Keep, exactly as received, in arrival order.
func (s *Sink) Messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the sink.
func (s *Sink) Close() error { return s.srv.Close() }

// Count returns the number of messages received, counting duplicates.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// Received returns how many times seq arrived.
func (s *Sink) Received(seq int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[seq]
}

// Arrivals returns the arrival time of every message, in order.
func (s *Sink) Arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// Tally compares the acknowledged sequence numbers with what arrived.
type Tally struct {
	Acked, Delivered, Lost, Duplicates, Unexpected int
	LostSeqs                                       []int
}

func (t Tally) String() string {
	return fmt.Sprintf("acked=%d delivered=%d lost=%d duplicates=%d unexpected=%d",
		t.Acked, t.Delivered, t.Lost, t.Duplicates, t.Unexpected)
}

// Tally compares acked (sequence numbers the relay answered 250 to) with what the sink received.
func (s *Sink) Tally(acked map[int]string) Tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Tally{Acked: len(acked)}
	for seq := range acked {
		switch n := s.got[seq]; {
		case n == 0:
			t.Lost++
			t.LostSeqs = append(t.LostSeqs, seq)
		default:
			t.Delivered++
			t.Duplicates += n - 1
		}
	}
	for seq, n := range s.got {
		if _, ok := acked[seq]; !ok {
			t.Unexpected += n
		}
	}
	sort.Ints(t.LostSeqs)
	return t
}

// WaitFor waits until every acked message arrived or ctx is done.
func (s *Sink) WaitFor(ctx context.Context, acked map[int]string) Tally {
	for {
		t := s.Tally(acked)
		if t.Lost == 0 {
			return t
		}
		select {
		case <-ctx.Done():
			return t
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type sinkSession struct{ s *Sink }

func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }
func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("sink: read message: %w", err)
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return fmt.Errorf("sink: read header: %w", err)
	}
	seq, err := strconv.Atoi(strings.TrimSpace(hdr.Get(SeqHeader)))
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		seq = -1
	}
	if s.reply != nil {
		if rerr := s.reply(seq); rerr != nil {
			return rerr
		}
	}
	if seq < 0 {
		s.noSeq++
	} else {
		s.got[seq]++
	}
	s.times = append(s.times, time.Now())
	if s.keep {
		s.msgs = append(s.msgs, msg)
	}
	return nil
}

// Others returns how many messages arrived without a sequence number (bounces, for instance).
func (s *Sink) Others() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noSeq
}
