// Package courier delivers queued messages to the next hop over SMTP (emersion/go-smtp's
// client). A Courier keeps one connection open and reuses it for message after message: after a
// successful DATA the next MAIL FROM follows directly, because go-smtp's Reset forces a new EHLO
// and would cost two round trips per message.
//
// Failures are classified by type, not by text: an *smtp.SMTPError says whether it is temporary;
// anything else (refused connection, timeout, broken pipe) is temporary.
//
// The relay sees one interface, Deliverer, and one Result type, whatever delivers: a Courier to
// a configured next hop, a Router that finds each domain's mail exchangers, or a test's fake.
// A delivery whose context ends is cut off at once (its connection is closed) and reported as a
// temporary failure, so that the message is tried again later: a relay that stops does not wait
// out the next hop's timeouts.
package courier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Result is the outcome of a delivery for one recipient.
type Result struct {
	OK        bool
	Temporary bool   // for a failure: try again later
	Reply     string // the next hop's reply, or why the attempt failed
	Partner   string // the host that was tried (host:port)
}

// Deliverer delivers messages. Each delivery worker owns one (it may keep a connection open
// between messages) and closes it when done.
type Deliverer interface {
	// Deliver sends one message and returns one result per recipient, in order.
	Deliver(ctx context.Context, from string, rcpts []string, body *io.SectionReader) []Result
	// Close lets go of what the Deliverer keeps between messages.
	Close()
}

// Courier is one delivery connection to a next hop. It is not safe for concurrent use: each
// delivery worker owns one.
type Courier struct {
	NextHop string        // host:port
	Helo    string        // our name in EHLO
	Timeout time.Duration // per command and for dialing (default 1 minute)

	c   *smtp.Client
	buf []byte // body copy buffer, reused from message to message

	mu   sync.Mutex
	conn net.Conn // of c; closed by a delivery whose context ends
	// dirty is set when a transaction was left half done; the next one starts with RSET.
	dirty bool
}

// Close ends the connection politely.
func (k *Courier) Close() {
	if k.c == nil {
		return
	}
	k.c.Quit()
	k.c.Close()
	k.c = nil
}

func (k *Courier) drop() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

func (k *Courier) timeout() time.Duration {
	if k.Timeout <= 0 {
		return time.Minute
	}
	return k.Timeout
}

func (k *Courier) connect(ctx context.Context) error {
	if k.c != nil {
		return nil
	}
	d := net.Dialer{Timeout: k.timeout()}
	conn, err := d.DialContext(ctx, "tcp", k.NextHop)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", k.NextHop, err)
	}
	k.mu.Lock()
	k.conn = conn
	k.mu.Unlock()
	if ctx.Err() != nil { // ended while dialing: interrupt found no connection to close
		conn.Close()
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = k.timeout()
	c.SubmissionTimeout = k.timeout()
	if err := c.Hello(k.Helo); err != nil {
		c.Close()
		return fmt.Errorf("greet %s: %w", k.NextHop, err)
	}
	k.c = c
	k.dirty = false
	return nil
}

// interrupt closes the connection under a delivery in flight.
func (k *Courier) interrupt() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		k.conn.Close()
	}
}

// Deliver sends one message to the next hop and returns one result per recipient, in order.
func (k *Courier) Deliver(ctx context.Context, from string, rcpts []string, body *io.SectionReader) []Result {
	stop := context.AfterFunc(ctx, k.interrupt)
	defer func() {
		if !stop() { // interrupted: the connection is gone
			k.drop()
		}
	}()
	res := k.deliver(ctx, from, rcpts, body)
	for i := range res {
		res[i].Partner = k.NextHop
	}
	return res
}

func (k *Courier) deliver(ctx context.Context, from string, rcpts []string, body io.Reader) []Result {
	res := make([]Result, len(rcpts))
	all := func(r Result) []Result {
		for i := range res {
			res[i] = r
		}
		return res
	}
	// A connection reused from an earlier message may have been closed by the next hop while
	// idle; one fresh connection is tried before giving up.
	for attempt := 0; ; attempt++ {
		reused := k.c != nil
		if err := k.connect(ctx); err != nil {
			return all(failure(err))
		}
		if k.dirty {
			if err := k.c.Reset(); err != nil {
				k.drop()
				if attempt == 0 {
					continue
				}
				return all(failure(err))
			}
			k.dirty = false
		}
		err := k.c.Mail(from, nil)
		if err == nil {
			break
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			k.dirty = true
			return all(failure(err))
		}
		k.drop()
		if !reused || attempt > 0 {
			return all(failure(err))
		}
	}
	k.dirty = true
	accepted := 0
	for i, r := range rcpts {
		if err := k.c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				k.drop()
				return all(failure(err))
			}
			res[i] = failure(err)
			continue
		}
		res[i] = Result{OK: true}
		accepted++
	}
	if accepted == 0 {
		return res
	}
	w, err := k.c.Data()
	if err != nil {
		return k.failAccepted(res, err)
	}
	if k.buf == nil {
		k.buf = make([]byte, 64<<10)
	}
	if _, err := io.CopyBuffer(onlyWriter{w}, body, k.buf); err != nil {
		k.drop()
		return k.failAccepted(res, fmt.Errorf("send body: %w", err))
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return k.failAccepted(res, err)
	}
	k.dirty = false
	reply := fmt.Sprintf("250 %s", resp.StatusText)
	for i := range res {
		if res[i].OK {
			res[i].Reply = reply
		}
	}
	return res
}

// onlyWriter hides everything but Write, so io.CopyBuffer uses the buffer it is given.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// failAccepted turns the accepted recipients' results into err's failure.
func (k *Courier) failAccepted(res []Result, err error) []Result {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		k.drop()
	}
	f := failure(err)
	for i := range res {
		if res[i].OK {
			res[i] = f
		}
	}
	return res
}

func failure(err error) Result {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return Result{Temporary: se.Temporary(), Reply: reply(se)}
	}
	return Result{Temporary: true, Reply: err.Error()}
}

func reply(se *smtp.SMTPError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", se.Code)
	if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
		fmt.Fprintf(&b, " %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	b.WriteString(" ")
	b.WriteString(se.Message)
	return b.String()
}

var (
	_ Deliverer = (*Courier)(nil)
	_ Deliverer = (*Router)(nil)
)
