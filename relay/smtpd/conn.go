package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// lingerTime and lingerBytes bound how long a connection that is being closed after a broken
// transfer is read and discarded, so that the one reply it was sent is not destroyed by a TCP
// reset (closing a socket with unread input makes the kernel send RST, and the peer may then
// lose the reply before reading it).
const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// conn is the server's side of one client connection, as go-smtp sees it. It exists because
// go-smtp's own error handling is not safe for a relay: after a read timeout or a broken
// transfer it answers and keeps reading, so the rest of a body is parsed as commands, and its
// read deadline is one per command line and one per whole DATA instead of one per read.
//
// conn therefore owns three things:
//
//   - timeouts: every Read gets its own deadline (the idle timeout of RFC 5321 §4.5.3.2), capped
//     by the deadline of the transaction in progress; go-smtp's own deadlines are ignored;
//   - the break-off rule: once a transfer breaks off (timeout, over-long line, size exceeded,
//     disconnect, I/O error, shutdown of an idle session) the connection is poisoned: at most one
//     reply is written, the write side is shut, every later Read fails, and the session refuses
//     whatever go-smtp may still parse out of its buffer;
//   - two replies go-smtp gets wrong, corrected on their way out (see fixReply).
type conn struct {
	net.Conn
	s  *Server
	st *connState

	idle  time.Duration
	txEnd atomic.Int64 // unix nanoseconds at which the transaction in progress must end; 0: none

	// top is the connection go-smtp writes replies to (a *tls.Conn after STARTTLS); a reply of
	// the break-off rule must go through it.
	top atomic.Pointer[smtp.Conn]

	draining atomic.Bool // the server shuts down: an idle session is ended
	poisoned atomic.Bool
	sawEOF   atomic.Bool // a Read returned EOF: a BDAT chunk may have been cut short

	once     sync.Once // releases the connection slot
	poisonMu sync.Mutex
}

type connState struct {
	busy atomic.Bool // inside a transaction (MAIL seen, not yet finished or reset)
}

// Read reads with a deadline of its own and applies the break-off rule to any error.
func (c *conn) Read(p []byte) (int, error) {
	if c.poisoned.Load() {
		return 0, net.ErrClosed
	}
	now := time.Now()
	d := now.Add(c.idle)
	if end := c.txEnd.Load(); end != 0 && end < d.UnixNano() {
		d = time.Unix(0, end)
	}
	c.Conn.SetReadDeadline(d)
	if c.draining.Load() && !c.st.busy.Load() {
		c.poison(replyShutdown)
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if err == nil {
		return n, nil
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		c.sawEOF.Store(true)
		return n, err
	case errors.As(err, &ne) && ne.Timeout():
		if c.draining.Load() && !c.st.busy.Load() {
			c.poison(replyShutdown)
		} else {
			c.poison(replyTimeout)
		}
	default:
		c.poison("")
	}
	return n, err
}

// SetReadDeadline is ignored: Read sets a deadline per read. go-smtp would otherwise set one per
// command line and one per whole DATA.
func (c *conn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline sets only the write deadline, for the same reason.
func (c *conn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// Write passes go-smtp's replies on, corrected by fixReply. After STARTTLS what passes here is
// encrypted and is never corrected: a TLS record cannot start with a reply's text.
func (c *conn) Write(p []byte) (int, error) {
	if q, ok := c.s.fixReply(p); ok {
		if _, err := c.Conn.Write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Close releases the connection slot. A poisoned connection is closed by its linger instead,
// so that its last reply is not lost.
func (c *conn) Close() error {
	c.release()
	if c.poisoned.Load() {
		return nil
	}
	return c.Conn.Close()
}

func (c *conn) release() {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.open, c)
		c.s.mu.Unlock()
		<-c.s.slots
	})
}

// startTransaction starts the transaction's total time limit.
func (c *conn) startTransaction(limit time.Duration) {
	c.st.busy.Store(true)
	c.txEnd.Store(time.Now().Add(limit).UnixNano())
}

func (c *conn) endTransaction() {
	c.st.busy.Store(false)
	c.txEnd.Store(0)
}

// drain ends the session at its next read if it is idle; a blocked read is woken at once.
func (c *conn) drain() {
	c.draining.Store(true)
	if !c.st.busy.Load() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

// poison applies the break-off rule: it writes reply (if any, and only if the connection was not
// poisoned before), shuts the write side and closes the connection after a bounded linger.
// Nothing read afterwards reaches the session.
func (c *conn) poison(reply string) {
	c.poisonMu.Lock()
	defer c.poisonMu.Unlock()
	if c.poisoned.Load() {
		return
	}
	if reply != "" {
		c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		var w io.Writer = c.Conn
		if sc := c.top.Load(); sc != nil {
			if nc := sc.Conn(); nc != net.Conn(c) {
				w = nc // the TLS layer after STARTTLS, so that the reply is encrypted
			}
		}
		io.WriteString(w, reply)
	}
	c.poisoned.Store(true)
	c.s.brokenOff.Add(1)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.s.lingers.Go(func() { c.linger() })
}

// linger reads and discards what the client still sends, for a bounded time, then closes.
func (c *conn) linger() {
	defer c.Conn.Close()
	c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(c.Conn, lingerBytes))
}

// fixReply corrects two replies of go-smtp on their way to the client: the SIZE it advertises
// (it is configured one byte above the real limit, because its DATA reader refuses a message of
// exactly its limit) and the 502 it gives to DATA or BDAT without a recipient, where RFC 5321
// §4.3.2 asks for 503. go-smtp writes every reply line with one Write.
func (s *Server) fixReply(p []byte) ([]byte, bool) {
	switch {
	case bytes.Equal(p, s.sizeWrong[0]):
		return s.sizeRight[0], true
	case bytes.Equal(p, s.sizeWrong[1]):
		return s.sizeRight[1], true
	case bytes.HasPrefix(p, []byte("502 5.5.1 Missing RCPT TO command")):
		return []byte("503 5.5.1 Bad sequence of commands: RCPT first\r\n"), true
	}
	return nil, false
}
