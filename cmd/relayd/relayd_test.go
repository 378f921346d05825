package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
)

// bins holds the relayd binary under test, built once in TestMain.
var bins relaytest.Binaries

func TestMain(m *testing.M) { relaytest.Main(m, &bins, relaytest.RelaydProgram) }

// startRelay starts relayd on root, listening on a free loopback port, and waits until it
// serves SMTP.
func startRelay(t testing.TB, root layout.Root, nextHop string, extra ...string) *relaytest.Relayd {
	t.Helper()
	return relaytest.StartRelayd(t, bins.Relayd, root, nextHop, extra...)
}

// ctl runs `relayd ctl ARGS --root ROOT` and returns stdout and the exit code.
func ctl(t *testing.T, root layout.Root, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bins.Relayd, append(append([]string{"ctl"}, args...), "--root", string(root))...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("ctl %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String() + errb.String(), code
}

func status(t *testing.T, root layout.Root) control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.Client{Path: root.ControlSocket()}.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return *st
}

func newSink(t testing.TB, addr string) *smtpload.Sink {
	t.Helper()
	s, err := smtpload.NewSink(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func load(t *testing.T, ctx context.Context, opts smtpload.LoadOptions) *smtpload.LoadResult {
	t.Helper()
	if opts.Duration == 0 {
		opts.Duration = time.Minute
	}
	res, err := smtpload.Load(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func waitDelivered(t *testing.T, sink *smtpload.Sink, acked map[int]string, within time.Duration) smtpload.Tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return sink.WaitFor(ctx, acked)
}

func TestThousandMessagesEndToEnd(t *testing.T) {
	sink := newSink(t, "127.0.0.1:0")
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, sink.Addr(), "--allow", "127.0.0.1/32")
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 1000, Concurrency: 8, Size: 4096})
	if res.Acked != 1000 {
		t.Fatalf("acked %d of 1000 (first error %v)", res.Acked, res.FirstError)
	}
	for seq, reply := range res.Acks {
		if !strings.Contains(reply, "queued as ") {
			t.Fatalf("reply to %d lacks the queue id: %q", seq, reply)
		}
	}
	tally := waitDelivered(t, sink, res.Acks, 60*time.Second)
	// Give late duplicates a moment to show up before counting them.
	time.Sleep(300 * time.Millisecond)
	tally = sink.Tally(res.Acks)
	t.Logf("%v in %v", tally, res.Elapsed)
	if tally.Lost != 0 || tally.Duplicates != 0 || tally.Unexpected != 0 || tally.Delivered != 1000 {
		t.Fatalf("end to end: %v", tally)
	}
	st := status(t, root)
	if st.Counters["received"] != 1000 || st.Counters["delivered"] != 1000 || st.QueueDepth != 0 {
		t.Fatalf("status after the run: depth %d counters %v", st.QueueDepth, st.Counters)
	}
	if st.Version != stamp.RelaydVersion {
		t.Fatalf("status version %q, want %q", st.Version, stamp.RelaydVersion)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

func TestKill9LosesNothing(t *testing.T) {
	tests := []struct {
		name string
		// killAfter: kill once this many messages were acknowledged (0: after the load, while
		// the slow next hop still works through the backlog).
		killAfter int
		slowSink  time.Duration
		n         int
	}{
		{"early", 25, 0, 600},
		{"middle", 300, 0, 600},
		{"backlog", 0, 3 * time.Millisecond, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := newSink(t, "127.0.0.1:0")
			if tt.slowSink > 0 {
				sink.SetReply(func(int) error { time.Sleep(tt.slowSink); return nil })
			}
			root := relaytest.ShortRoot(t)
			p := startRelay(t, root, sink.Addr())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			var mu sync.Mutex
			acked := map[int]string{}
			res := load(t, ctx, smtpload.LoadOptions{
				Addr: p.Addr, N: tt.n, Concurrency: 8, Size: 4096,
				OnAck: func(seq int, reply string) {
					mu.Lock()
					acked[seq] = reply
					n := len(acked)
					mu.Unlock()
					if tt.killAfter > 0 && n >= tt.killAfter {
						once.Do(func() { p.Kill9(); cancel() })
					}
				},
			})
			if tt.killAfter == 0 {
				if res.Acked != tt.n {
					t.Fatalf("acked %d of %d before the kill", res.Acked, tt.n)
				}
				got := sink.Count()
				if got >= tt.n {
					t.Fatalf("the slow next hop already has everything (%d); no backlog to kill", got)
				}
				p.Kill9()
				t.Logf("killed with %d of %d delivered", got, tt.n)
			}
			// Every 250 the load generator saw is in acked (OnAck) or res.Acks.
			mu.Lock()
			for seq, r := range res.Acks {
				acked[seq] = r
			}
			mu.Unlock()
			before := sink.Count()
			startRelay(t, root, sink.Addr())
			tally := waitDelivered(t, sink, acked, 90*time.Second)
			t.Logf("acked before kill %d, delivered before restart %d: %v", len(acked), before, tally)
			if tally.Lost != 0 {
				t.Fatalf("lost %d acknowledged messages: %v (first %v)", tally.Lost, tally, tally.LostSeqs[:min(10, len(tally.LostSeqs))])
			}
			if tally.Acked == 0 {
				t.Fatal("nothing was acknowledged: the test proved nothing")
			}
		})
	}
}

func TestNextHopDownThenBack(t *testing.T) {
	hop := freeAddr(t)
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, hop, "--retry-base", "300ms", "--retry-max", "1s")
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 50, Concurrency: 4})
	if res.Acked != 50 {
		t.Fatalf("acked %d of 50 with the next hop down: %v", res.Acked, res.FirstError)
	}
	// The queue builds up while the next hop is away...
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := status(t, root)
		if st.QueueDepth == 50 && st.Counters["deferred"] >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue did not build: depth %d, counters %v", st.QueueDepth, st.Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, code := ctl(t, root, "queue", "--json")
	var queue []control.QueueEntry
	if code != 0 || json.Unmarshal([]byte(out), &queue) != nil || len(queue) != 50 {
		t.Fatalf("ctl queue --json: code %d, %d entries\n%s", code, len(queue), out)
	}
	if queue[0].Attempts < 1 || queue[0].LastError == "" {
		t.Fatalf("queued message shows no failed attempt: %+v", queue[0])
	}
	// ...and drains when it comes back.
	sink := newSink(t, hop)
	if _, code := ctl(t, root, "flush"); code != 0 {
		t.Fatalf("ctl flush exit %d", code)
	}
	tally := waitDelivered(t, sink, res.Acks, 30*time.Second)
	if tally.Lost != 0 || tally.Duplicates != 0 {
		t.Fatalf("after the next hop returned: %v", tally)
	}
	deadline = time.Now().Add(5 * time.Second)
	for status(t, root).QueueDepth != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty after delivery: %d", status(t, root).QueueDepth)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTemporaryFailureDefersPermanentBounces(t *testing.T) {
	sink := newSink(t, "127.0.0.1:0")
	const tempSeq, permSeq = 3, 5
	var mu sync.Mutex
	tries := map[int]int{}
	sink.SetReply(func(seq int) error {
		mu.Lock()
		defer mu.Unlock()
		tries[seq]++
		switch {
		case seq == tempSeq && tries[seq] <= 2:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		case seq == permSeq:
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, sink.Addr(), "--retry-base", "200ms", "--retry-max", "500ms")
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 8, Concurrency: 1, From: "sender@example.test"})
	if res.Acked != 8 {
		t.Fatalf("acked %d of 8", res.Acked)
	}
	want := map[int]string{}
	for seq, r := range res.Acks {
		if seq != permSeq {
			want[seq] = r
		}
	}
	tally := waitDelivered(t, sink, want, 20*time.Second)
	if tally.Lost != 0 || tally.Duplicates != 0 {
		t.Fatalf("deliveries: %v", tally)
	}
	mu.Lock()
	tempTries := tries[tempSeq]
	mu.Unlock()
	if tempTries != 3 {
		t.Fatalf("message refused twice with 451 was tried %d times, want 3", tempTries)
	}
	// The bounce goes to the sender through the next hop: a message without a sequence
	// number, which the sink counts apart.
	deadline := time.Now().Add(10 * time.Second)
	for sink.Others() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no bounce reached the next hop for the 550")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := sink.Others(); n != 1 {
		t.Fatalf("%d bounces, want 1", n)
	}
	if sink.Received(permSeq) != 0 {
		t.Fatal("the refused message was counted as delivered")
	}
	st := status(t, root)
	if st.Counters["bounced"] != 1 || st.Counters["failed"] != 1 || st.Counters["deferred"] < 2 || st.QueueDepth != 0 {
		t.Fatalf("status: depth %d counters %v", st.QueueDepth, st.Counters)
	}
}

func TestNotAnOpenRelay(t *testing.T) {
	sink := newSink(t, "127.0.0.1:0")
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, sink.Addr(), "--allow", "127.0.0.1/32")
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 3, LocalAddr: "127.0.0.2", Duration: 10 * time.Second})
	if res.Acked != 0 {
		t.Fatalf("a client on 127.0.0.2 got %d messages accepted with only 127.0.0.1/32 allowed", res.Acked)
	}
	var se *smtp.SMTPError
	if !errors.As(res.FirstError, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("refusal should be 5.7.1, got %v", res.FirstError)
	}
	ok := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 1, LocalAddr: "127.0.0.1"})
	if ok.Acked != 1 {
		t.Fatalf("127.0.0.1 refused: %v", ok.FirstError)
	}
	if st := status(t, root); st.Counters["refused"] < 3 {
		t.Fatalf("refused counter %d", st.Counters["refused"])
	}
}

// dialRaw opens a plain connection and reads the greeting.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
		t.Fatalf("greeting %q, %v", line, err)
	}
	return c, r
}

// command sends a line and returns the (last line of the) reply.
func command(t *testing.T, c net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if line != "" {
		if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
			return "write: " + err.Error()
		}
	}
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return "read: " + err.Error()
		}
		if len(s) < 4 || s[3] != '-' {
			return strings.TrimRight(s, "\r\n")
		}
	}
}

// openData dials addr, says EHLO as helo, starts a transaction from a@x.test to b@y.test and
// sends DATA, failing the test unless the relay answers 354.
func openData(t *testing.T, addr, helo string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dialRaw(t, addr)
	command(t, c, r, "EHLO "+helo)
	command(t, c, r, "MAIL FROM:<a@x.test>")
	command(t, c, r, "RCPT TO:<b@y.test>")
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
		c.Close()
		t.Fatalf("DATA: %q", got)
	}
	return c, r
}

func TestHostileClients(t *testing.T) {
	hop := freeAddr(t) // nothing listens: everything accepted stays in the queue to be counted
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, hop, "--max-size", "20000", "--retry-base", "1h")
	accepted := 0

	t.Run("over-long line", func(t *testing.T) {
		c, r := dialRaw(t, p.Addr)
		defer c.Close()
		command(t, c, r, "EHLO hostile.test")
		if got := command(t, c, r, "MAIL FROM:<"+strings.Repeat("a", 5000)+"@x.test>"); !strings.HasPrefix(got, "501") {
			t.Fatalf("over-long address: %q", got)
		}
		c.Write([]byte("MAIL FROM:<" + strings.Repeat("a", 20000) + "@x.test>\r\nNOOP\r\n"))
		expectReplyThenClose(t, c, r, "500")
	})
	t.Run("garbage", func(t *testing.T) {
		c, r := dialRaw(t, p.Addr)
		defer c.Close()
		for _, g := range []string{"\x00\x01\x02 binary", "FOO BAR", "MAIL", "RCPT TO:<x@y.test>", "DATA"} {
			if got := command(t, c, r, g); !strings.HasPrefix(got, "5") {
				t.Fatalf("garbage %q answered %q", g, got)
			}
		}
	})
	t.Run("DATA beyond SIZE", func(t *testing.T) {
		c, r := openData(t, p.Addr, "hostile.test")
		defer c.Close()
		line := strings.Repeat("x", 900) + "\r\n"
		for range 40 { // 36 KB > 20000
			c.Write([]byte(line))
		}
		c.Write([]byte(".\r\nMAIL FROM:<a@x.test>\r\n"))
		// The transfer broke off: one reply, then the connection is closed.
		expectReplyThenClose(t, c, r, "552")
	})
	t.Run("disconnect mid-DATA", func(t *testing.T) {
		for range 5 {
			c, r := dialRaw(t, p.Addr)
			command(t, c, r, "EHLO hostile.test")
			command(t, c, r, "MAIL FROM:<a@x.test>")
			command(t, c, r, "RCPT TO:<b@y.test>")
			command(t, c, r, "DATA")
			c.Write([]byte("Subject: half\r\n\r\nthis message is never finished\r\n"))
			c.Close()
		}
	})

	// 500 idle connections at once; the relay keeps serving others.
	var idle []net.Conn
	for range 500 {
		c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle), err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 20, Concurrency: 4, Duration: 30 * time.Second})
	if res.Acked != 20 {
		t.Fatalf("with 500 idle connections open, %d of 20 were accepted: %v", res.Acked, res.FirstError)
	}
	accepted += res.Acked
	// Every idle connection got its greeting too.
	for i, c := range idle[:50] {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "220") {
			t.Fatalf("idle connection %d: %q %v", i, line, err)
		}
	}

	// The spool holds exactly the accepted messages, now and after a restart.
	if d := status(t, root).QueueDepth; d != accepted {
		t.Fatalf("queue depth %d, want %d accepted", d, accepted)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	startRelay(t, root, hop, "--retry-base", "1h")
	if d := status(t, root).QueueDepth; d != accepted {
		t.Fatalf("after restart the spool holds %d, want %d", d, accepted)
	}
}

func TestSIGTERMFinishesTheOpenTransaction(t *testing.T) {
	sink := newSink(t, "127.0.0.1:0")
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, sink.Addr())
	idleC, idleR := dialRaw(t, p.Addr) // an idle client must not hold the shutdown up
	defer idleC.Close()
	c, r := openData(t, p.Addr, "drain.test")
	defer c.Close()
	c.Write([]byte("Subject: in flight\r\n" + smtpload.SeqHeader + ": 77\r\n\r\nfirst half\r\n"))
	p.Signal(syscall.SIGTERM)
	// The drain has begun once relayd lets the idle client go; the open transaction goes on.
	idleC.SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := idleR.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("idle client after SIGTERM: %q, %v", line, err)
	}
	select {
	case <-p.Done():
		t.Fatal("relayd exited with a transaction open")
	default:
	}
	c.Write([]byte("second half\r\n"))
	got := command(t, c, r, ".")
	if !strings.HasPrefix(got, "250 2.0.0 OK queued as ") {
		t.Fatalf("in-flight message after SIGTERM: %q", got)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("relayd did not exit after the transaction ended")
	}
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	// The message is delivered, before the exit or after a restart.
	startRelay(t, root, sink.Addr())
	tally := waitDelivered(t, sink, map[int]string{77: got}, 20*time.Second)
	if tally.Lost != 0 || tally.Duplicates != 0 {
		t.Fatalf("in-flight message: %v", tally)
	}
}

func TestCtl(t *testing.T) {
	root := relaytest.ShortRoot(t)
	if _, code := ctl(t, root, "status"); code != 1 {
		t.Fatalf("ctl status with no relay: exit %d, want 1", code)
	}
	p := startRelay(t, root, freeAddr(t))
	out, code := ctl(t, root, "status")
	if code != 0 || !strings.Contains(out, "queue depth: 0") || !strings.Contains(out, stamp.RelaydVersion) {
		t.Fatalf("ctl status: %d\n%s", code, out)
	}
	out, code = ctl(t, root, "status", "--json")
	var resp control.Response
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || resp.Status == nil || resp.Status.PID != p.Pid() {
		t.Fatalf("ctl status --json: %d\n%s", code, out)
	}
	// The root has no msgtrack: restarting the tracking component must fail and say why.
	if out, code := ctl(t, root, "restart-component", "tracking"); code != 1 || !strings.Contains(out, "bin/msgtrack") {
		t.Fatalf("restart of a component whose binary is missing: %d %s", code, out)
	}
	if out, code := ctl(t, root, "restart-component", "no-such"); code != 1 || !strings.Contains(out, "no such component") {
		t.Fatalf("restart of a missing component: %d %s", code, out)
	}
	if _, code := ctl(t, root, "tracking", "maybe"); code != 2 {
		t.Fatalf("bad tracking argument: exit %d, want 2", code)
	}
	if _, code := ctl(t, root, "frobnicate"); code != 2 {
		t.Fatalf("unknown ctl command: exit %d, want 2", code)
	}
	fi, err := os.Stat(root.ControlSocket())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode: %v %v", fi.Mode().Perm(), err)
	}
	if out, code := ctl(t, root, "shutdown"); code != 0 {
		t.Fatalf("ctl shutdown: %d %s", code, out)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("relayd did not stop after ctl shutdown")
	}
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("exit %d after ctl shutdown", code)
	}
}

func TestUsageErrors(t *testing.T) {
	root := relaytest.ShortRoot(t)
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"--no-such-flag"}, 2},
		{[]string{"--allow", "not-a-cidr", "--root", string(root)}, 2},
		{[]string{"--next-hop", "nocolon", "--root", string(root)}, 2},
		{[]string{"stray-argument"}, 2},
		{[]string{"--help"}, 0},
	}
	for _, tt := range tests {
		cmd := exec.Command(bins.Relayd, tt.args...)
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != tt.code {
			t.Errorf("relayd %v: exit %d, want %d\n%s", tt.args, got, tt.code, out)
		}
	}
}

func TestConfigFile(t *testing.T) {
	root := relaytest.ShortRoot(t)
	sink := newSink(t, "127.0.0.1:0")
	conf := fmt.Sprintf(`{"next-hop": %q, "allow": ["127.0.0.1/32"], "workers": 2, "max-size": 5000}`, sink.Addr())
	if err := os.WriteFile(root.Config(), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startRelay(t, root, "")
	if st := status(t, root); st.NextHop != sink.Addr() {
		t.Fatalf("next hop from the config file: %q", st.NextHop)
	}
	small := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 1, Size: 1000})
	big := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 1, Size: 8000, FirstSeq: 1})
	if small.Acked != 1 || big.Acked != 0 {
		t.Fatalf("max-size from the config file: small acked %d, big acked %d", small.Acked, big.Acked)
	}
	if tally := waitDelivered(t, sink, small.Acks, 10*time.Second); tally.Lost != 0 {
		t.Fatalf("%v", tally)
	}
	os.WriteFile(root.Config(), []byte(`{"bogus": 1}`), 0o600)
	cmd := exec.Command(bins.Relayd, "--root", string(root))
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "bogus") {
		t.Fatalf("unknown setting: exit %d %s", cmd.ProcessState.ExitCode(), out)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestSTARTTLS(t *testing.T) {
	sink := newSink(t, "127.0.0.1:0")
	root := relaytest.ShortRoot(t)
	cert, key := writeCert(t, string(root))
	p := startRelay(t, root, sink.Addr(), "--tls-cert", cert, "--tls-key", key)
	pc, err := smtp.Dial(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Hello("tls.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := pc.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered with a certificate configured")
	}
	pc.Close()
	c, err := smtp.DialStartTLS(p.Addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS after STARTTLS")
	}
	msg := smtpload.Message(9, 512)
	if err := c.SendMail("tls@example.test", []string{"dst@sink.invalid"}, bytes.NewReader(msg)); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	if tally := waitDelivered(t, sink, map[int]string{9: ""}, 10*time.Second); tally.Lost != 0 {
		t.Fatalf("%v", tally)
	}

	// Without a certificate STARTTLS is not offered.
	plain := startRelay(t, relaytest.ShortRoot(t), sink.Addr())
	c2, err := smtp.Dial(plain.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Hello("plain.test")
	if ok, _ := c2.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered without a certificate")
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SIZE"} {
		if ok, _ := c2.Extension(ext); !ok {
			t.Errorf("%s not offered", ext)
		}
	}
}
