// Package smtpd is relayd's SMTP intake: an emersion/go-smtp server that accepts mail only from
// the allowed client networks (it is never an open relay), adds a Received: header, and answers
// 250 only after the queue has stored the message durably, with the message's queue id in the
// reply.
//
// It also owns what go-smtp leaves to its user or gets wrong for a relay (see conn.go):
//
//   - one rule for every transfer that breaks off (read timeout, over-long line, size exceeded,
//     disconnect or half-close, I/O error): at most one reply, the connection is closed, nothing of
//     the transaction is stored, and no byte after the break reaches the session as a command;
//   - timeouts per read (RFC 5321 §4.5.3.2), plus a total limit per transaction;
//   - one size limit: a message of exactly MaxSize bytes passes, whether announced with EHLO's
//     SIZE and MAIL's SIZE= or sent with DATA or BDAT;
//   - body lines longer than MaxLineLength are refused with one permanent reply (BDAT chunks are
//     binary and have no line limit);
//   - a cap on simultaneous connections that clients outside the allowed networks never use
//     (they are refused at the greeting), and a graceful drain: on Shutdown idle sessions get
//     421 4.3.2 and are closed, while a session in the middle of a transaction may finish it.
package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"relayfix/relay/spool"
)

// Acceptor stores a message durably; *queue.Queue is one.
type Acceptor interface {
	Accept(ctx context.Context, env *spool.Envelope, header, body []byte) error
	NewID() string
}

// Config configures the intake.
type Config struct {
	Hostname      string
	Allow         []netip.Prefix // client networks allowed to relay
	MaxSize       int64          // largest message accepted, bytes
	MaxRecipients int
	MaxConns      int // simultaneous connections; more are answered 421 and closed
	// MaxLineLength is the longest body line of a DATA transfer, without its CRLF (2000); a
	// longer one makes the message fail permanently. Command lines are capped at commandLimit.
	MaxLineLength int
	// ReadTimeout is how long one read may wait for the client (5 minutes): a sender that is slow
	// but steady is never cut off by it.
	ReadTimeout time.Duration
	// TransactionTimeout bounds a whole transaction, from MAIL to the end of its data (1 hour).
	TransactionTimeout time.Duration
	WriteTimeout       time.Duration
	TLS                *tls.Config // enables STARTTLS when set
	Queue              Acceptor
	Logger             *slog.Logger

	// ObserveTransaction, when set, is called for every stored message with the time from its
	// MAIL FROM to the 250 after its data (the metrics' transaction latency).
	ObserveTransaction func(time.Duration)
}

// Counter names.
const (
	CountRefused     = "refused"     // MAIL/RCPT from a client outside the allowed networks
	CountConnections = "connections" // connections accepted
	CountOverload    = "overload"    // connections turned away by MaxConns
	CountRejected    = "rejected"    // transactions that failed (too big, broken off, spool error)
	CountBrokenOff   = "broken_off"  // connections closed by the break-off rule
)

// commandLimit caps a command line, to bound the memory a client can make a session hold. It is
// enforced by go-smtp's line reader, which also sees the first bytes of a pipelined BDAT chunk
// (up to its 4 KiB read buffer) before it knows they are a chunk: the cap leaves room for them,
// so a binary chunk is never taken for an over-long line.
const commandLimit = 16 << 10

// Server is the SMTP intake.
type Server struct {
	cfg  Config
	srv  *smtp.Server
	log  *slog.Logger
	bufs sync.Pool

	refused, conns, overload, rejected atomic.Uint64

	brokenOff atomic.Uint64

	draining atomic.Bool
	mu       sync.Mutex
	open     map[*conn]struct{}
	slots    chan struct{}
	lingers  sync.WaitGroup // connections being closed after a broken transfer or a refusal

	// sizeWrong and sizeRight are the EHLO SIZE lines go-smtp writes and the ones sent instead.
	sizeWrong, sizeRight [2][]byte
}

// New returns an intake server; Serve starts it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 32 << 20
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 1000
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 2000
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = 2000
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.TransactionTimeout <= 0 {
		cfg.TransactionTimeout = time.Hour
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	s := &Server{cfg: cfg, log: cfg.Logger, open: make(map[*conn]struct{}), slots: make(chan struct{}, cfg.MaxConns)}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	for i, sep := range []string{"-", " "} {
		s.sizeWrong[i] = fmt.Appendf(nil, "250%sSIZE %d\r\n", sep, cfg.MaxSize+1)
		s.sizeRight[i] = fmt.Appendf(nil, "250%sSIZE %d\r\n", sep, cfg.MaxSize)
	}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	// go-smtp's DATA reader refuses a message of exactly its limit (it fails as soon as its
	// budget is spent, before it sees the end marker): it gets one byte more, the session
	// enforces MaxSize itself for DATA, BDAT and MAIL SIZE=, and fixReply corrects EHLO's SIZE.
	srv.MaxMessageBytes = cfg.MaxSize + 1
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = max(commandLimit, cfg.MaxLineLength+4<<10)
	srv.ReadTimeout = 0 // conn sets a deadline per read
	srv.WriteTimeout = cfg.WriteTimeout
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = slogAdapter{cfg.Logger}
	s.srv = srv
	return s
}

// Counters returns the intake's counters.
func (s *Server) Counters() map[string]uint64 {
	return map[string]uint64{
		CountRefused:     s.refused.Load(),
		CountConnections: s.conns.Load(),
		CountOverload:    s.overload.Load(),
		CountRejected:    s.rejected.Load(),
		CountBrokenOff:   s.brokenOff.Load(),
	}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(&listener{Listener: ln, s: s})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, ends idle sessions with 421 4.3.2, and waits for the
// ones inside a transaction to finish it; when ctx ends first it closes them all.
func (s *Server) Shutdown(ctx context.Context) error { return s.shutdown(ctx, 0) }

// Retire is Shutdown for a live upgrade, where another process already accepts on the same
// listener: it stops accepting, lets the open sessions go on for up to linger (a client that
// sends its next message and QUIT never sees a 421), and only then drains as Shutdown does.
func (s *Server) Retire(ctx context.Context, linger time.Duration) error {
	return s.shutdown(ctx, linger)
}

func (s *Server) shutdown(ctx context.Context, linger time.Duration) error {
	if linger <= 0 {
		s.draining.Store(true)
	}
	defer s.lingers.Wait()
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown(context.Background()) }()
	closed := func(err error) error {
		if errors.Is(err, smtp.ErrServerClosed) {
			return nil
		}
		return err
	}
	if linger > 0 {
		t := time.NewTimer(linger)
		select {
		case err := <-done:
			t.Stop()
			return closed(err)
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		s.draining.Store(true)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case err := <-done:
			return closed(err)
		case <-ctx.Done():
			s.srv.Close()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle ends every session that is not inside a transaction, at its next read.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		c.drain()
	}
}

type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s
		// A client that may not relay is refused at the greeting, before it takes a slot:
		// otherwise anyone who can connect could hold every slot with idle sessions.
		if !s.allowed(remoteIP(c)) {
			s.refused.Add(1)
			s.refuse(c, "554 5.7.1 "+s.cfg.Hostname+" Relay access denied: your address is not allowed to send through this relay\r\n")
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.overload.Add(1)
			s.refuse(c, "421 4.7.0 Too many connections, try again later\r\n")
			continue
		}
		s.conns.Add(1)
		gc := &conn{Conn: c, s: s, st: &connState{}, idle: s.cfg.ReadTimeout}
		s.mu.Lock()
		s.open[gc] = struct{}{}
		s.mu.Unlock()
		return gc, nil
	}
}

// refuse answers a connection that is not served and closes it, without holding up Accept.
func (s *Server) refuse(c net.Conn, reply string) {
	s.lingers.Go(func() {
		defer c.Close()
		c.SetDeadline(time.Now().Add(lingerTime))
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, lingerBytes))
	})
}

func remoteIP(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	gc, ok := nc.(*conn)
	if !ok {
		return nil, fmt.Errorf("smtpd: connection %T not accepted by this server", nc)
	}
	gc.top.Store(c)
	sess := &session{s: s, conn: c, gc: gc, start: time.Now(), helo: c.Hostname(), ip: remoteIP(nc)}
	sess.allowed = s.allowed(sess.ip)
	return sess, nil
}

func (s *Server) allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range s.cfg.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var (
	errRelayDenied  = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied: your address is not allowed to send through this relay"}
	errDraining     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errBrokenOff    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Transfer broken off, closing connection"}
	errNestedMail   = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Bad sequence of commands: a transaction is already open"}
	errNoRecipients = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	errSpool        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not stored: local error, try again later"}
	errTooBig       = errors.New("message exceeds the size limit")
	errLongLine     = errors.New("message line too long")
)

// The replies of the break-off rule, written by conn.poison.
const (
	replyTimeout  = "421 4.4.2 Timeout waiting for client input, closing connection\r\n"
	replyShutdown = "421 4.3.2 Service shutting down, closing connection\r\n"
	replyTooBig   = "552 5.3.4 Message size exceeds fixed maximum message size, closing connection\r\n"
	replyLongLine = "500 5.5.2 Message line too long, closing connection\r\n"
)

// maxPath is RFC 5321's limit on a forward or reverse path, angle brackets excluded.
const maxPath = 254

type session struct {
	s       *Server
	conn    *smtp.Conn
	gc      *conn
	ip      netip.Addr
	helo    string
	allowed bool
	start   time.Time

	from  string
	rcpts []string

	accepted, failed, refused int

	mailAt time.Time // when the transaction's MAIL FROM was accepted
}

func (ss *session) Reset() {
	ss.from = ""
	ss.rcpts = ss.rcpts[:0]
	ss.gc.endTransaction()
}

func (ss *session) Logout() error {
	ss.gc.endTransaction()
	if ss.s.log.Enabled(context.Background(), slog.LevelDebug) {
		ss.s.log.Debug("smtp session", "client", ss.ip.String(), "helo", ss.helo,
			"accepted", ss.accepted, "failed", ss.failed, "refused", ss.refused,
			"duration", time.Since(ss.start).Round(time.Millisecond))
	}
	return nil
}

// admit refuses a command of a transaction on a broken connection or from a client outside the
// allowed networks (never an open relay).
func (ss *session) admit() error {
	if ss.gc.poisoned.Load() {
		return errBrokenOff
	}
	if !ss.allowed {
		ss.refused++
		ss.s.refused.Add(1)
		return errRelayDenied
	}
	return nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := ss.admit(); err != nil {
		return err
	}
	if ss.s.draining.Load() {
		// A MAIL read before the drain began: the session ends here, with the one 421.
		ss.gc.poison(replyShutdown)
		return errBrokenOff
	}
	if ss.gc.st.busy.Load() {
		// go-smtp lets a second MAIL through and keeps the recipients it has: the session
		// would then hold a sender for recipients it no longer knows.
		return errNestedMail
	}
	if err := checkPath(from); err != nil {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address: " + err.Error()}
	}
	if opts != nil && opts.Size > ss.s.cfg.MaxSize {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed maximum message size"}
	}
	ss.gc.startTransaction(ss.s.cfg.TransactionTimeout)
	ss.mailAt = time.Now()
	ss.from = from
	ss.rcpts = ss.rcpts[:0]
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := ss.admit(); err != nil {
		return err
	}
	if err := checkPath(to); err != nil || to == "" {
		if err == nil {
			err = errors.New("empty")
		}
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: " + err.Error()}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// checkPath refuses what no next hop could ever take: control characters (a CR or LF would
// split the command that carries the address) and paths longer than RFC 5321 allows.
func checkPath(addr string) error {
	if len(addr) > maxPath {
		return fmt.Errorf("longer than %d characters", maxPath)
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character %#02x", c)
		}
	}
	return nil
}

// Data reads a message from a DATA or BDAT transfer and stores it. A transfer that breaks off
// poisons the connection (see conn): the client gets at most that one reply, the connection is
// closed and nothing is stored.
func (ss *session) Data(r io.Reader) error {
	s := ss.s
	gc := ss.gc
	if gc.poisoned.Load() {
		// go-smtp may parse a DATA out of bytes it read before the break: refuse it unread.
		return errBrokenOff
	}
	if len(ss.rcpts) == 0 {
		return errNoRecipients
	}
	// BDAT hands the chunks over through a pipe; DATA through go-smtp's dot-unstuffing reader.
	_, bdat := r.(*io.PipeReader)
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			s.bufs.Put(buf)
		}
	}()
	lr := &limitReader{r: r, left: s.cfg.MaxSize}
	if !bdat {
		lr.lineMax = s.cfg.MaxLineLength
	}
	_, err := buf.ReadFrom(lr)
	if err == nil && bdat && gc.sawEOF.Load() {
		// go-smtp reads a BDAT chunk through an io.LimitReader, which takes EOF for the end
		// of the chunk: a last chunk cut short by a disconnect or a half-close looks complete.
		err = io.ErrUnexpectedEOF
	}
	if err == nil && gc.poisoned.Load() {
		err = errBrokenOff
	}
	if err != nil {
		ss.failed++
		s.rejected.Add(1)
		switch {
		case errors.Is(err, errTooBig), errors.Is(err, smtp.ErrDataTooLarge):
			gc.poison(replyTooBig)
		case errors.Is(err, errLongLine), errors.Is(err, smtp.ErrTooLongLine):
			gc.poison(replyLongLine)
		default:
			gc.poison("") // timeout (already answered), disconnect, I/O error
		}
		s.log.Debug("smtp: transfer broken off", "client", ss.ip.String(), "err", err)
		return errBrokenOff
	}
	body := buf.Bytes()
	now := time.Now().UTC()
	id := s.cfg.Queue.NewID()
	env := &spool.Envelope{
		ID:         id,
		Sender:     ss.from,
		Recipients: append([]string(nil), ss.rcpts...),
		Received:   now,
		ClientIP:   ss.ip.String(),
		ClientName: ss.helo,
		Helo:       ss.helo,
		Server:     s.cfg.Hostname,
	}
	env.MessageID, env.Subject = headerFields(body)
	proto := "ESMTP"
	if _, ok := ss.conn.TLSConnectionState(); ok {
		proto = "ESMTPS"
	}
	received := fmt.Appendf(nil, "Received: from %s ([%s])\r\n\tby %s (relayd) with %s id %s\r\n\tfor <%s>; %s\r\n",
		sanitize(ss.helo), ss.ip, s.cfg.Hostname, proto, id, sanitize(firstOr(env.Recipients)), now.Format(time.RFC1123Z))
	env.Size = int64(len(received) + len(body))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	if err := s.cfg.Queue.Accept(ctx, env, received, body); err != nil {
		ss.failed++
		s.rejected.Add(1)
		s.log.Error("smtp: cannot store message", "client", ss.ip.String(), "err", err)
		return errSpool
	}
	ss.accepted++
	if s.cfg.ObserveTransaction != nil {
		s.cfg.ObserveTransaction(time.Since(ss.mailAt))
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + id}
}

// limitReader fails a transfer as soon as it exceeds the size limit or, for DATA, the line
// length limit, so that the client is answered at that point and not after the whole message.
type limitReader struct {
	r       io.Reader
	left    int64 // bytes still allowed
	lineMax int   // 0: no line limit
	line    int   // bytes of the current line so far, CRLF excluded
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		return 0, errTooBig
	}
	l.left -= int64(n)
	if l.lineMax > 0 {
		for _, b := range p[:n] {
			switch b {
			case '\n':
				l.line = 0
			case '\r':
			default:
				l.line++
				if l.line > l.lineMax {
					return 0, errLongLine
				}
			}
		}
	}
	return n, err
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// sanitize keeps client-supplied text from breaking the Received: header.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '(' || r == ')' {
			return '_'
		}
		return r
	}, s)
}

// headerFields returns the Message-ID and Subject header values of a message, looking at its
// header section only.
func headerFields(msg []byte) (messageID, subject string) {
	sc := bufio.NewScanner(bytes.NewReader(msg))
	sc.Buffer(make([]byte, 0, 1024), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, "\r") == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case messageID == "" && strings.EqualFold(name, "Message-ID"):
			messageID = strings.TrimSpace(value)
		case subject == "" && strings.EqualFold(name, "Subject"):
			subject = strings.TrimSpace(value)
		}
		if messageID != "" && subject != "" {
			break
		}
	}
	return messageID, subject
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Debug("smtp: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Debug("smtp: " + fmt.Sprintln(v...)) }
