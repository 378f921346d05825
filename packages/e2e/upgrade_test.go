package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relayfix/internal/demo"
	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/relay/control"
)

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	return ok && len(rest) > 0 && rest[0] != 'Z'
}

// servingPID returns the PID in ROOT/run/relayd.pid, which the relayd that serves writes.
func servingPID(t testing.TB, root layout.Root) int {
	t.Helper()
	b, err := os.ReadFile(root.PIDFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", root.PIDFile(), err)
	}
	return pid
}

// stopServing ends, when the test ends, whichever relayd serves root then: after a live upgrade
// it is no longer the process the test started.
func stopServing(t testing.TB, root layout.Root) {
	t.Cleanup(func() {
		b, err := os.ReadFile(root.PIDFile())
		if err != nil {
			return
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid <= 0 || !alive(pid) {
			return
		}
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(20 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// status asks the relay on root for its status.
func status(t testing.TB, root layout.Root) *control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.Client{Path: root.ControlSocket()}.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// steadyLoad is the load of the live-upgrade tests: 8 clients that each quit and reconnect after
// every 5 messages, at 200 messages a second in all, for d.
func steadyLoad(addr string, d time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.res, l.err = smtpload.Load(ctx, smtpload.LoadOptions{Addr: addr, N: 100000, Concurrency: 8, Size: 2048,
			Rate: 200, Duration: d, PerConn: 5})
	}()
	return l
}

// wait waits for the load to run its course.
func (l *load) wait(t testing.TB) *smtpload.LoadResult {
	t.Helper()
	<-l.done
	if l.err != nil {
		t.Fatalf("load: %v", l.err)
	}
	return l.res
}

// smtpSource runs Postfix's smtp-source against addr, when it is installed: n messages, each in
// a session of its own, 4 sessions at a time, each waiting a second between messages (so that
// it runs through n/4 seconds). It returns the command's result channel, or nil.
func smtpSource(t testing.TB, addr string, n int) <-chan error {
	t.Helper()
	bin, err := exec.LookPath("smtp-source")
	if err != nil {
		for _, p := range []string{"/usr/sbin/smtp-source", "/usr/lib/postfix/sbin/smtp-source"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Log("smtp-source is not installed: only the Go clients send")
		return nil
	}
	done := make(chan error, 1)
	go func() {
		cmd := exec.Command(bin, "-c", "-s", "4", "-w", "1", "-m", strconv.Itoa(n), "-l", "1024",
			"-f", "source@example.test", "-t", "dst@sink.invalid", addr)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			done <- fmt.Errorf("smtp-source: %w\n%s", err, out.String())
			return
		}
		// smtp-source counts on stdout; it reports an error reply or a dropped connection on
		// stderr and keeps going, so anything it says besides counts is a failure.
		for _, line := range strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\n' || r == '\r' }) {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if _, err := strconv.Atoi(line); err != nil {
				done <- fmt.Errorf("smtp-source: %s", line)
				return
			}
		}
		done <- nil
	}()
	return done
}

// checkTracking checks that the tracking logs record every acknowledged message once per event
// (received, queued, delivered), in order. The plugin writes asynchronously: it is given until
// the deadline.
func checkTracking(t testing.TB, root layout.Root, acks map[int]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs, err := demo.ReadRecords(root.TrackingLog())
		if err != nil {
			t.Fatal(err)
		}
		missing, repeated, first := 0, 0, -1
		for seq := range acks {
			if recs.Missing(seq) > 0 {
				missing++
				first = seq
			}
			repeated += recs.Repeated(seq)
		}
		if missing == 0 || time.Now().After(deadline) {
			if missing > 0 || repeated > 0 {
				t.Errorf("tracking logs: %d of %d acknowledged messages lack records (e.g. %d), %d records repeated",
					missing, len(acks), first, repeated)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServicePack3LiveUnderLoad applies SP3, which replaces relayd itself, on SP2+KB910618 while
// 8 clients keep opening connections and sending, and Postfix's smtp-source too; then rolls it
// back. relayd hands over to its new build and back: every connection is greeted, every
// acknowledged message is delivered once and tracked once per event.
func TestServicePack3LiveUnderLoad(t *testing.T) {
	root, sink, r := liveSP2(t)
	stopServing(t, root)
	mustHotfix(t, root, "apply", e.kb)
	r.waitTracking(t, "6.5.7651.45")
	pid0 := status(t, root).PID

	l := steadyLoad(r.Addr, 12*time.Second)
	source := smtpSource(t, r.Addr, 40)
	waitFlowing(t, sink, 100)

	out := mustHotfix(t, root, "apply", e.sp3)
	if !strings.Contains(out, "service relay: restarted, running 6.5.7700.1, healthy") {
		t.Errorf("live apply of SP3 said:\n%s", out)
	}
	st := status(t, root)
	if st.Version != "6.5.7700.1" || st.PID == pid0 || servingPID(t, root) != st.PID {
		t.Fatalf("after SP3: relayd %s pid %d (was %d), pid file %d", st.Version, st.PID, pid0, servingPID(t, root))
	}
	if c, _ := st.Component("tracking"); c.Version != "6.5.7700.1" || c.Health != control.HealthHealthy {
		t.Errorf("after SP3: tracking %+v", c)
	}
	if alive(pid0) {
		// The old relayd may still be finishing its last sessions; it must go on its own.
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid0) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid0) {
			t.Errorf("the old relayd %d is still running 10s after the upgrade", pid0)
		}
	}
	checkConsistent(t, root)
	waitFlowing(t, sink, 100) // through the new build

	// Back: relayd hands over to its previous build the same way.
	out = mustHotfix(t, root, "rollback", "SP3")
	if !strings.Contains(out, "service relay: restarted, running 6.5.7638.1, healthy") {
		t.Errorf("live rollback of SP3 said:\n%s", out)
	}
	st2 := status(t, root)
	if st2.Version != "6.5.7638.1" || st2.PID == st.PID {
		t.Fatalf("after the rollback: relayd %s pid %d (SP3's was %d)", st2.Version, st2.PID, st.PID)
	}
	if c, _ := st2.Component("tracking"); c.Version != "6.5.7651.45" {
		t.Errorf("after the rollback: tracking %+v", c)
	}
	checkConsistent(t, root)

	res := l.wait(t)
	t.Logf("load: %d sessions, %d sent, %d acked, %d rejected, %d connection errors, max transaction %v",
		res.Sessions, res.Sent, res.Acked, res.Rejected, res.ConnErrors, res.MaxLatency())
	if res.ConnErrors != 0 || res.Rejected != 0 {
		t.Errorf("%d connections not greeted or broken, %d transactions refused (first: %v)", res.ConnErrors, res.Rejected, res.FirstError)
	}
	if source != nil {
		if err := <-source; err != nil {
			t.Error(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tally := sink.WaitFor(ctx, res.Acks)
	t.Logf("sink: %s, %d from smtp-source", tally, sink.Others())
	if tally.Lost != 0 || tally.Duplicates != 0 || tally.Unexpected != 0 {
		t.Errorf("delivery: %s (first lost %v)", tally, tally.LostSeqs[:min(5, len(tally.LostSeqs))])
	}
	if source != nil && sink.Others() != 40 {
		t.Errorf("smtp-source: %d of 40 messages delivered", sink.Others())
	}
	checkTracking(t, root, res.Acks)
}

// TestRelaydBuildThatDoesNotTakeOver applies builds of relayd that exit at start and that never
// become ready, under load: the running relayd serves throughout, hotfix puts the files back,
// nothing is lost or refused.
func TestRelaydBuildThatDoesNotTakeOver(t *testing.T) {
	for _, tc := range []struct {
		name, pkg, want string
	}{
		{"exits at start", e.relayExit, "exited"},
		{"never ready", e.relayHang, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := relaytest.ShortRoot(t)
			mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
			sink, err := smtpload.NewSink("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			// The relay gives a new build 3s to be ready; hotfix waits longer than that.
			r := relaytest.StartRelayd(t, root.Bin("relayd"), root, sink.Addr(),
				"--allow", "127.0.0.1/32", "--upgrade-timeout", "3s")
			stopServing(t, root)
			pid := status(t, root).PID

			l := steadyLoad(r.Addr, time.Minute)
			waitFlowing(t, sink, 100)
			res := hotfix(t, root, nil, "apply", tc.pkg, "--health-timeout", "10s")
			if res.code != 1 || !strings.Contains(res.stderr, tc.want) || !strings.Contains(res.stderr, "the previous build was put back") {
				t.Errorf("apply: exit %d\n%s%s", res.code, res.stdout, res.stderr)
			}
			if v := versionOf(t, root, "relayd"); v != "6.5.7638.1" {
				t.Errorf("after the rollback relayd is listed as %s", v)
			}
			checkConsistent(t, root)
			if st := status(t, root); st.PID != pid || st.Version != "6.5.7638.1" {
				t.Errorf("relayd after the failed upgrade: pid %d (was %d) version %s", st.PID, pid, st.Version)
			}
			waitFlowing(t, sink, 100)
			l.cancel()
			lr := l.wait(t)
			if lr.ConnErrors != 0 || lr.Rejected != 0 {
				t.Errorf("%d connections not greeted or broken, %d transactions refused (first: %v)", lr.ConnErrors, lr.Rejected, lr.FirstError)
			}
			noneLost(t, sink, lr)
		})
	}
}

// waitPID waits until ROOT/run/relayd.pid names another process than old: the new relayd of an
// upgrade is ready.
func waitPID(t testing.TB, root layout.Root, old int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if pid := servingPID(t, root); pid != old {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no new relayd took over from %d within 30s", old)
	return 0
}

// waitQueued waits until the relay on root holds at least n messages.
func waitQueued(t testing.TB, root layout.Root, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for status(t, root).QueueDepth < n {
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not reach %d messages in 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillDuringHandover kills the old relayd, or the new one, with SIGKILL the moment the new
// one has taken over, while the old one still holds a queue the next hop refused for a while.
// No acknowledged message is lost: the new one adopts what the old one left, and when the new
// one is the one killed, the next start of the installed relayd finds its messages too.
func TestKillDuringHandover(t *testing.T) {
	for _, victim := range []string{"old", "new"} {
		t.Run(victim, func(t *testing.T) {
			root := relaytest.ShortRoot(t)
			mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
			mustHotfix(t, root, "apply", e.kb)
			sink, err := smtpload.NewSink("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sink.Close() })
			sink.SetReply(func(int) error {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "not now"}
			})
			args := []string{"--allow", "127.0.0.1/32", "--retry-base", "100ms", "--retry-max", "300ms"}
			r := relaytest.StartRelayd(t, root.Bin("relayd"), root, sink.Addr(), args...)
			stopServing(t, root)

			l := steadyLoad(r.Addr, 4*time.Second)
			waitQueued(t, root, 100)
			r.Signal(syscall.SIGHUP)
			pid := waitPID(t, root, r.Pid())
			if victim == "old" {
				r.Kill9()
			} else {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			sink.SetReply(nil)
			res := l.wait(t)
			if victim == "new" {
				// The old one drains and exits by itself; then nothing serves until the next start.
				select {
				case <-r.Done():
				case <-time.After(20 * time.Second):
					t.Fatal("the old relayd did not exit after handing over")
				}
				for alive(pid) {
					time.Sleep(10 * time.Millisecond)
				}
				relaytest.StartRelayd(t, root.Bin("relayd"), root, sink.Addr(), args...)
				stopServing(t, root)
			}
			st := status(t, root)
			if st.PID != servingPID(t, root) || st.Version != "6.5.7638.1" || alive(r.Pid()) {
				t.Errorf("after the handover: pid %d (pid file %d), version %s, old alive %v", st.PID, servingPID(t, root), st.Version, alive(r.Pid()))
			}
			noneLost(t, sink, res)
		})
	}
}

// TestKillServicePack3AtEveryStep kills a live apply of SP3, which upgrades relayd itself, at
// every step boundary while the relay carries mail, and checks after each recovery that one
// relayd serves, on the build the database lists, and at the end that no message was lost.
func TestKillServicePack3AtEveryStep(t *testing.T) {
	root, sink, r := liveSP2(t)
	stopServing(t, root)
	mustHotfix(t, root, "apply", e.kb)
	r.waitTracking(t, "6.5.7651.45")
	l := steadyLoad(r.Addr, 2*time.Minute)

	for _, c := range crashCases(2, forward) {
		t.Run(c.step, func(t *testing.T) {
			crashAndRecover(t, root, c, "apply", e.sp3)
			want := "6.5.7638.1"
			if c.finish {
				want = "6.5.7700.1"
			}
			if v := versionOf(t, root, "relayd"); v != want {
				t.Errorf("after a kill at %s and recovery relayd is listed as %s, want %s", c.step, v, want)
			}
			checkConsistent(t, root)
			st := status(t, root)
			if st.Version != want || st.PID != servingPID(t, root) {
				t.Errorf("after a kill at %s and recovery relayd %d runs %s (pid file %d), want %s",
					c.step, st.PID, st.Version, servingPID(t, root), want)
			}
			if want == "6.5.7700.1" { // back to SP2+KB910618 for the next step
				mustHotfix(t, root, "rollback", "SP3")
			}
		})
	}
	l.cancel()
	res := l.wait(t)
	if res.ConnErrors != 0 {
		t.Errorf("%d connections not greeted or broken (first: %v)", res.ConnErrors, res.FirstError)
	}
	noneLost(t, sink, res)
}
