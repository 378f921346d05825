// Package smtpd is relayd's SMTP intake: an emersion/go-smtp server that accepts mail only from
// the allowed client networks (it is never an open relay), adds a Received: header, and answers
// 250 only after the queue has stored the message durably, with the message's queue id in the
// reply.
//
// It also owns the connection limits that go-smtp leaves to its user (a cap on simultaneous
// connections) and a graceful drain: on Shutdown idle connections are closed at once, while a
// connection in the middle of a transaction may finish it.
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
	MaxLineLength int
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	TLS           *tls.Config // enables STARTTLS when set
	Queue         Acceptor
	Logger        *slog.Logger

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
)

// Server is the SMTP intake.
type Server struct {
	cfg  Config
	srv  *smtp.Server
	log  *slog.Logger
	bufs sync.Pool

	refused, conns, overload, rejected atomic.Uint64

	draining atomic.Bool
	mu       sync.Mutex
	open     map[net.Conn]*connState
	slots    chan struct{}
}

type connState struct {
	busy atomic.Bool // inside a transaction (MAIL seen, not yet finished or reset)
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
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	s := &Server{cfg: cfg, log: cfg.Logger, open: make(map[net.Conn]*connState), slots: make(chan struct{}, cfg.MaxConns)}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxSize
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
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

// Shutdown stops accepting connections, closes idle ones, and waits for the ones inside a
// transaction to finish it; when ctx ends first it closes them all.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown(context.Background()) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case err := <-done:
			if errors.Is(err, smtp.ErrServerClosed) {
				err = nil
			}
			return err
		case <-ctx.Done():
			s.srv.Close()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle ends every connection that is not inside a transaction. The write side is shut
// first so that a reply already written still reaches the client.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, st := range s.open {
		if st.busy.Load() {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		c.SetReadDeadline(time.Now())
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
		select {
		case s.slots <- struct{}{}:
		default:
			s.overload.Add(1)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "421 4.7.0 Too many connections, try again later\r\n")
			c.Close()
			continue
		}
		s.conns.Add(1)
		tc := &trackedConn{Conn: c, s: s, st: &connState{}}
		s.mu.Lock()
		s.open[c] = tc.st
		s.mu.Unlock()
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	s    *Server
	st   *connState
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.open, c.Conn)
		c.s.mu.Unlock()
		<-c.s.slots
	})
	return c.Conn.Close()
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sess := &session{s: s, conn: c, start: time.Now(), helo: c.Hostname()}
	if tc, ok := nc.(*trackedConn); ok {
		sess.st = tc.st
	} else {
		sess.st = &connState{}
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		sess.ip = ap.Addr().Unmap()
	}
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
	errRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied: your address is not allowed to send through this relay"}
	errDraining    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errBrokenData  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not stored: transfer broken off"}
	errSpool       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not stored: local error, try again later"}
)

type session struct {
	s       *Server
	conn    *smtp.Conn
	st      *connState
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
	ss.st.busy.Store(false)
}

func (ss *session) Logout() error {
	ss.st.busy.Store(false)
	if ss.s.log.Enabled(context.Background(), slog.LevelDebug) {
		ss.s.log.Debug("smtp session", "client", ss.ip.String(), "helo", ss.helo,
			"accepted", ss.accepted, "failed", ss.failed, "refused", ss.refused,
			"duration", time.Since(ss.start).Round(time.Millisecond))
	}
	return nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if !ss.allowed {
		ss.refused++
		ss.s.refused.Add(1)
		return errRelayDenied
	}
	if ss.s.draining.Load() {
		return errDraining
	}
	ss.st.busy.Store(true)
	ss.mailAt = time.Now()
	ss.from = from
	ss.rcpts = ss.rcpts[:0]
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !ss.allowed {
		ss.refused++
		ss.s.refused.Add(1)
		return errRelayDenied
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	s := ss.s
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			s.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		ss.failed++
		s.rejected.Add(1)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se // e.g. 552 message too large
		}
		return errBrokenData
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
