package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
)

// The tests in this file drive relayd's SMTP intake with raw sockets, as a hostile or broken
// client would, and check three things every time: the replies, whether the connection was
// closed, and what the next hop received.

// intake is a relayd with a sink as its next hop that keeps every message it receives.
type intake struct {
	p    *relaytest.Relayd
	root layout.Root
	sink *smtpload.Sink
	seq  int // sequence numbers of marker messages
}

func startIntake(t testing.TB, extra ...string) *intake {
	t.Helper()
	sink := newSink(t, "127.0.0.1:0")
	sink.Keep()
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, sink.Addr(), extra...)
	return &intake{p: p, root: root, sink: sink, seq: 1 << 20}
}

// readReply reads one (possibly multi-line) reply and returns its lines.
func readReply(r *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			if s != "" {
				lines = append(lines, s)
			}
			return lines, err
		}
		lines = append(lines, strings.TrimRight(s, "\r\n"))
		if len(s) < 4 || s[3] != '-' {
			return lines, nil
		}
	}
}

// expectReplyThenClose reads everything the relay still sends until it closes the connection
// and checks that it was exactly one reply starting with want (none when want is "").
func expectReplyThenClose(t *testing.T, c net.Conn, r *bufio.Reader, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was not closed; read so far %q", rest)
	}
	lines := strings.Split(strings.TrimRight(string(rest), "\r\n"), "\r\n")
	if len(rest) == 0 {
		lines = nil
	}
	switch {
	case want == "" && len(lines) != 0:
		t.Fatalf("want no reply before the close, got %q", lines)
	case want != "" && (len(lines) != 1 || !strings.HasPrefix(lines[0], want)):
		t.Fatalf("want exactly one reply %q before the close, got %q", want, lines)
	}
}

// settle sends one well-formed marker message on a fresh connection and waits until the next
// hop has it and the queue is empty: everything the relay accepted before is delivered by then.
func (in *intake) settle(t *testing.T) {
	t.Helper()
	in.seq++
	seq := in.seq
	c, r := dialRaw(t, in.p.Addr)
	defer c.Close()
	command(t, c, r, "EHLO marker.test")
	command(t, c, r, "MAIL FROM:<marker@x.test>")
	command(t, c, r, "RCPT TO:<marker@y.test>")
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("marker DATA: %q", got)
	}
	c.Write(smtpload.Message(seq, 100))
	if got := command(t, c, r, "."); !strings.HasPrefix(got, "250") {
		t.Fatalf("marker: %q", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for in.sink.Received(seq) == 0 || status(t, in.root).QueueDepth != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("marker %d not delivered (queue depth %d)", seq, status(t, in.root).QueueDepth)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// delivered returns the messages the next hop received, markers left out.
func (in *intake) delivered() [][]byte {
	var out [][]byte
	for _, m := range in.sink.Messages() {
		if !bytes.Contains(m, []byte("marker@")) && !bytes.Contains(m, []byte("load message")) {
			out = append(out, m)
		}
	}
	return out
}

// body returns a message as the next hop received it, without the Received: header relayd adds.
func body(m []byte) []byte {
	if !bytes.HasPrefix(m, []byte("Received: ")) {
		return m
	}
	for i := 0; i+2 < len(m); i++ {
		if m[i] == '\n' && m[i+1] != '\t' && m[i+1] != ' ' {
			return m[i+1:]
		}
	}
	return nil
}

// unwrap undoes the line breaks relayd inserts into lines over 998 characters on delivery.
func unwrap(m []byte) []byte { return bytes.ReplaceAll(m, []byte("\r\n "), nil) }

func longestLine(m []byte) int {
	n := 0
	for l := range bytes.SplitSeq(m, []byte("\n")) {
		n = max(n, len(l))
	}
	return n
}

// open dials, greets, and starts a transaction.
func (in *intake) open(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dialRaw(t, in.p.Addr)
	t.Cleanup(func() { c.Close() })
	command(t, c, r, "EHLO client.test")
	if got := command(t, c, r, "MAIL FROM:<a@x.test>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL: %q", got)
	}
	if got := command(t, c, r, "RCPT TO:<b@y.test>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("RCPT: %q", got)
	}
	return c, r
}

// Case 1: a DATA that times out is never followed by commands read out of its body.
func TestIntakeTimeoutInDataEndsTheSession(t *testing.T) {
	in := startIntake(t, "--read-timeout", "1s")
	c, r := in.open(t)
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
	c.Write([]byte("Subject: outer\r\n\r\nfirst line\r\n"))
	// The relay answers the timeout without being sent anything more.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	lines, err := readReply(r)
	if err != nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "421 4.4.2") {
		t.Fatalf("after the read timeout: %q, %v", lines, err)
	}
	// What the client sends after the break is never run as commands.
	c.Write([]byte("MAIL FROM:<inner@t.test>\r\nRCPT TO:<inner@t.test>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\nQUIT\r\n"))
	expectReplyThenClose(t, c, r, "")
	in.settle(t)
	if got := in.delivered(); len(got) != 0 {
		t.Fatalf("the next hop received %d messages from a broken transfer: %q", len(got), got)
	}
}

// Case 1: the read timeout is per read: a slow but steady DATA is not cut, a paused command
// line is answered 421 and not run, and the transaction's total limit still holds.
func TestIntakeTimeoutIsPerRead(t *testing.T) {
	in := startIntake(t, "--read-timeout", "1s", "--transaction-timeout", "6s")

	t.Run("steady sender", func(t *testing.T) {
		c, r := in.open(t)
		if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
			t.Fatalf("DATA: %q", got)
		}
		c.Write([]byte("Subject: slow\r\n\r\n"))
		// 3 s in all, three times the read timeout, one line every 250 ms.
		for i := range 12 {
			fmt.Fprintf(c, "line %d\r\n", i)
			time.Sleep(250 * time.Millisecond)
		}
		if got := command(t, c, r, "."); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("a slow but steady DATA: %q", got)
		}
		in.settle(t)
		got := in.delivered()
		if len(got) != 1 || !bytes.Contains(got[0], []byte("line 11\r\n")) {
			t.Fatalf("next hop received %q", got)
		}
	})

	t.Run("paused command line", func(t *testing.T) {
		c, r := dialRaw(t, in.p.Addr)
		defer c.Close()
		command(t, c, r, "EHLO client.test")
		c.Write([]byte("NOOP"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		lines, err := readReply(r)
		if err != nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "421 4.4.2") {
			t.Fatalf("NOOP without CRLF past the timeout: %q, %v", lines, err)
		}
		c.Write([]byte("\r\n"))
		expectReplyThenClose(t, c, r, "")
	})

	t.Run("total transaction limit", func(t *testing.T) {
		before := len(in.delivered())
		c, r := in.open(t)
		if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
			t.Fatalf("DATA: %q", got)
		}
		c.Write([]byte("Subject: endless\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		replies := make(chan []string, 1)
		go func() {
			lines, _ := readReply(r)
			replies <- lines
		}()
		start := time.Now()
		var lines []string
	trickle:
		for i := 0; ; i++ {
			select {
			case lines = <-replies:
				break trickle
			case <-time.After(250 * time.Millisecond):
				if time.Since(start) > 20*time.Second {
					t.Fatal("no reply within 20 s: the transaction limit was not applied")
				}
				fmt.Fprintf(c, "line %d\r\n", i)
			}
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "421 4.4.2") {
			t.Fatalf("past the transaction limit: %q", lines)
		}
		if el := time.Since(start); el < 4*time.Second {
			t.Fatalf("cut after %v, before the 6 s transaction limit", el)
		}
		in.settle(t)
		if got := in.delivered(); len(got) != before {
			t.Fatalf("the cut transaction reached the next hop: %d messages, want %d", len(got), before)
		}
	})
}

// Case 2: a BDAT chunk cut short by a half-close or a close is never stored.
func TestIntakeTruncatedBDATIsNotStored(t *testing.T) {
	in := startIntake(t)
	for _, halfClose := range []bool{true, false} {
		t.Run(fmt.Sprintf("half-close=%v", halfClose), func(t *testing.T) {
			c, r := in.open(t)
			chunk := []byte("Subject: cut\r\n\r\n" + strings.Repeat("x", 61))
			c.Write(append([]byte("BDAT 300 LAST\r\n"), chunk...)) // 77 of 300 bytes
			if halfClose {
				c.(*net.TCPConn).CloseWrite()
				expectReplyThenClose(t, c, r, "")
			} else {
				c.Close()
			}
		})
	}
	// A complete binary chunk, pipelined with its command, with NULs, bare CRs and a line far
	// longer than the DATA line limit, is accepted and delivered byte for byte.
	t.Run("binary chunk", func(t *testing.T) {
		c, r := in.open(t)
		payload := []byte("Subject: binary\r\n\r\n")
		for i := range 9000 {
			payload = append(payload, byte(i*7+1)&^'\n')
		}
		fmt.Fprintf(c, "BDAT %d LAST\r\n", len(payload))
		c.Write(payload)
		if got := command(t, c, r, ""); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("binary BDAT: %q", got)
		}
		if got := command(t, c, r, "QUIT"); !strings.HasPrefix(got, "221") {
			t.Fatalf("QUIT: %q", got)
		}
		in.settle(t)
		got := in.delivered()
		// Lines over 998 characters are broken with CRLF SPACE on the way to the next hop, and
		// the DATA that carries it ends the last line, which the chunk left open.
		if len(got) != 1 || !bytes.Equal(unwrap(body(got[0])), append(payload, "\r\n"...)) {
			t.Fatalf("next hop received %d messages, want the binary one byte for byte", len(got))
		}
		if n := longestLine(got[0]); n > 1000 {
			t.Fatalf("a line of %d bytes went to the next hop", n)
		}
	})
}

// Case 3: SIZE is one limit: exactly --max-size bytes pass, one more does not, by every way.
func TestIntakeSizeLimitIsExact(t *testing.T) {
	const limit = 10000
	in := startIntake(t, "--max-size", strconv.Itoa(limit))
	msg := func(tag string, n int) []byte {
		m := []byte("Subject: " + tag + "\r\n\r\n")
		for len(m) < n {
			m = append(m, strings.Repeat("y", 68)+"\r\n"...)
		}
		m = m[:n-2]
		return append(m, "\r\n"...)
	}
	c, r := dialRaw(t, in.p.Addr)
	defer c.Close()
	fmt.Fprintf(c, "EHLO client.test\r\n")
	lines, _ := readReply(r)
	if !strings.Contains(strings.Join(lines, "\n"), fmt.Sprintf("250-SIZE %d\n", limit)) {
		t.Fatalf("EHLO does not advertise SIZE %d: %q", limit, lines)
	}
	if got := command(t, c, r, fmt.Sprintf("MAIL FROM:<a@x.test> SIZE=%d", limit+1)); !strings.HasPrefix(got, "552 5.3.4") {
		t.Fatalf("MAIL SIZE=%d: %q", limit+1, got)
	}
	if got := command(t, c, r, fmt.Sprintf("MAIL FROM:<a@x.test> SIZE=%d", limit)); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL SIZE=%d: %q", limit, got)
	}
	command(t, c, r, "RCPT TO:<b@y.test>")
	command(t, c, r, "DATA")
	c.Write(msg("data exact", limit))
	if got := command(t, c, r, "."); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("DATA of exactly %d bytes: %q", limit, got)
	}
	command(t, c, r, "MAIL FROM:<a@x.test>")
	command(t, c, r, "RCPT TO:<b@y.test>")
	fmt.Fprintf(c, "BDAT %d\r\n", limit/2)
	c.Write(msg("bdat exact", limit)[:limit/2])
	command(t, c, r, "")
	fmt.Fprintf(c, "BDAT %d LAST\r\n", limit/2)
	c.Write(msg("bdat exact", limit)[limit/2:])
	if got := command(t, c, r, ""); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("BDAT of exactly %d bytes: %q", limit, got)
	}

	t.Run("DATA one byte over", func(t *testing.T) {
		c, r := in.open(t)
		command(t, c, r, "DATA")
		c.Write(msg("data over", limit+1))
		c.Write([]byte(".\r\nNOOP\r\n"))
		expectReplyThenClose(t, c, r, "552 5.3.4")
	})
	t.Run("BDAT one byte over", func(t *testing.T) {
		c, r := in.open(t)
		fmt.Fprintf(c, "BDAT %d LAST\r\n", limit+1)
		c.Write(msg("bdat over", limit+1))
		c.Write([]byte("NOOP\r\n"))
		expectReplyThenClose(t, c, r, "552 5.3.4")
	})
	t.Run("BDAT over in the second chunk", func(t *testing.T) {
		c, r := in.open(t)
		fmt.Fprintf(c, "BDAT %d\r\n", limit)
		c.Write(msg("bdat over", limit))
		if got := command(t, c, r, ""); !strings.HasPrefix(got, "250") {
			t.Fatalf("first chunk: %q", got)
		}
		c.Write([]byte("BDAT 1 LAST\r\nzNOOP\r\n"))
		expectReplyThenClose(t, c, r, "552 5.3.4")
	})

	in.settle(t)
	got := in.delivered()
	// Delivery workers run concurrently: the two may arrive in either order.
	if len(got) == 2 && bytes.Equal(body(got[0]), msg("bdat exact", limit)) {
		got[0], got[1] = got[1], got[0]
	}
	if len(got) != 2 || !bytes.Equal(body(got[0]), msg("data exact", limit)) || !bytes.Equal(body(got[1]), msg("bdat exact", limit)) {
		t.Fatalf("next hop received %d messages, want the two of exactly %d bytes", len(got), limit)
	}
}

// Case 4: an address with a control character is refused at MAIL or RCPT.
func TestIntakeRefusesControlCharactersInAddresses(t *testing.T) {
	in := startIntake(t)
	c, r := dialRaw(t, in.p.Addr)
	defer c.Close()
	command(t, c, r, "EHLO client.test")
	for _, bad := range []string{"a\rb@t.test", "a\x00b@t.test", "a\x01b@t.test", "a\tb@t.test", "a\x7fb@t.test"} {
		if got := command(t, c, r, "MAIL FROM:<"+bad+">"); !strings.HasPrefix(got, "501") && !strings.HasPrefix(got, "553") {
			t.Fatalf("MAIL FROM:<%q>: %q", bad, got)
		}
		if got := command(t, c, r, "MAIL FROM:<a@x.test>"); !strings.HasPrefix(got, "250") {
			t.Fatalf("MAIL: %q", got)
		}
		if got := command(t, c, r, "RCPT TO:<"+bad+">"); !strings.HasPrefix(got, "501") && !strings.HasPrefix(got, "553") {
			t.Fatalf("RCPT TO:<%q>: %q", bad, got)
		}
		if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "503") {
			t.Fatalf("DATA without a valid recipient: %q", got)
		}
		command(t, c, r, "RSET")
	}
	in.settle(t)
	if got := in.delivered(); len(got) != 0 {
		t.Fatalf("next hop received %q", got)
	}
}

// Case 5: a body line over the limit fails the message permanently with exactly one reply,
// even from a pipelining client; a line at the limit passes.
func TestIntakeLongBodyLine(t *testing.T) {
	in := startIntake(t)
	t.Run("at the limit", func(t *testing.T) {
		c, r := in.open(t)
		command(t, c, r, "DATA")
		c.Write([]byte("Subject: long\r\n\r\n" + strings.Repeat("z", 2000) + "\r\n"))
		if got := command(t, c, r, "."); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("a 2000-byte line: %q", got)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		c, r := in.open(t)
		command(t, c, r, "DATA")
		c.Write([]byte("Subject: too long\r\n\r\n" + strings.Repeat("z", 2001) + "\r\nmore\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nNOOP\r\n"))
		expectReplyThenClose(t, c, r, "500 5.5.2")
	})
	in.settle(t)
	got := in.delivered()
	if len(got) != 1 || !bytes.Contains(unwrap(got[0]), []byte(strings.Repeat("z", 2000)+"\r\n")) {
		t.Fatalf("next hop received %d messages, want the one at the limit", len(got))
	}
}

// A disconnect or a half-close in the middle of DATA stores nothing.
func TestIntakeDisconnectInData(t *testing.T) {
	in := startIntake(t)
	for _, halfClose := range []bool{true, false} {
		c, r := in.open(t)
		command(t, c, r, "DATA")
		c.Write([]byte("Subject: half\r\n\r\nnever finished\r\n"))
		if halfClose {
			c.(*net.TCPConn).CloseWrite()
			expectReplyThenClose(t, c, r, "")
		} else {
			c.Close()
		}
	}
	in.settle(t)
	if got := in.delivered(); len(got) != 0 {
		t.Fatalf("next hop received %q", got)
	}
}

// Case 7: clients outside the allowed networks take no connection slot; DATA without RCPT is
// a bad sequence (503).
func TestIntakeRefusedClientsTakeNoSlots(t *testing.T) {
	in := startIntake(t, "--allow", "127.0.0.1/32", "--max-conns", "20")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	var outsiders []net.Conn
	defer func() {
		for _, c := range outsiders {
			c.Close()
		}
	}()
	for i := range 40 {
		c, err := d.Dial("tcp", in.p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		outsiders = append(outsiders, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(line, "554 5.7.1") {
			t.Fatalf("outsider %d greeted with %q", i, line)
		}
	}
	c, r := dialRaw(t, in.p.Addr) // fails unless greeted 220
	defer c.Close()
	command(t, c, r, "EHLO client.test")
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "503") {
		t.Fatalf("DATA without MAIL: %q", got)
	}
	command(t, c, r, "MAIL FROM:<a@x.test>")
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "503") {
		t.Fatalf("DATA without RCPT: %q", got)
	}
	c.Write([]byte("BDAT 3 LAST\r\nabc"))
	if got := command(t, c, r, ""); !strings.HasPrefix(got, "503") {
		t.Fatalf("BDAT without RCPT: %q", got)
	}
	if got := command(t, c, r, "NOOP"); !strings.HasPrefix(got, "250") {
		t.Fatalf("NOOP after a refused BDAT: %q", got)
	}
	// A second MAIL inside a transaction is a bad sequence too: go-smtp would keep the first
	// transaction's recipients for it.
	command(t, c, r, "RCPT TO:<b@y.test>")
	if got := command(t, c, r, "MAIL FROM:<>"); !strings.HasPrefix(got, "503") {
		t.Fatalf("nested MAIL: %q", got)
	}
}

// Case 7: SIGHUP upgrades relayd live (here to the same build): a new process takes over the
// listener, the old one lets an idle session go on for a while, then ends it with 421 4.3.2 and
// exits 0; on SIGTERM the new one drains the same way, at once.
func TestIntakeSignals(t *testing.T) {
	in := startIntake(t)
	idle, idleR := dialRaw(t, in.p.Addr)
	defer idle.Close()
	command(t, idle, idleR, "EHLO idle.test")
	in.p.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(in.p.Log(), "the new relayd took over") {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not upgrade relayd")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := command(t, idle, idleR, "NOOP"); !strings.HasPrefix(got, "250") {
		t.Fatalf("an idle session right after the upgrade: %q", got)
	}
	expectReplyThenClose(t, idle, idleR, "421 4.3.2")
	select {
	case <-in.p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the old relayd did not exit after the upgrade")
	}
	if code := in.p.ExitCode(); code != 0 {
		t.Fatalf("old relayd: exit %d", code)
	}
	b, err := os.ReadFile(in.root.PIDFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == in.p.Pid() || syscall.Kill(pid, 0) != nil {
		t.Fatalf("pid file names %d after the upgrade (old %d)", pid, in.p.Pid())
	}
	c, r := dialRaw(t, in.p.Addr) // the new process serves the same listener
	command(t, c, r, "EHLO client.test")
	syscall.Kill(pid, syscall.SIGTERM)
	expectReplyThenClose(t, c, r, "421 4.3.2")
	deadline = time.Now().Add(20 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatal("the new relayd did not exit on SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zombie reports whether pid has exited and waits for its parent to reap it.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}
