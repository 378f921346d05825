package trackhost

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/internal/stamp"
	"relayfix/manifest/record"
	"relayfix/packages/installdb"
	"relayfix/relay/control"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

// These tests run the real relayd with the real msgtrack builds, a counting next hop and SMTP load
// on loopback: the KB 910618 episode end to end.

// install places bin as the plugin of the relayd under test and, if listed, records it in
// the installed-files database that relayd reads.
func install(t testing.TB, root layout.Root, bin string, listed bool) {
	t.Helper()
	sum := placePlugin(t, root, bin)
	if !listed {
		return
	}
	// The version each build is stamped with, as hotfix records it.
	version, _ := record.ParseFileVersion(map[string]string{bins.TrackPrefix: stamp.TrackPrefixVersion, bins.TrackFixed: stamp.TrackFixedVersion}[bin])
	db := &installdb.DB{Files: []installdb.InstalledFile{{
		File:    record.File{Name: "msgtrack", Path: DBPath, SHA256: hex.EncodeToString(sum), Version: version, Platform: "linux/amd64"},
		Package: "TEST", Installed: time.Now().UTC(),
	}}}
	if err := os.MkdirAll(root.Hotfix(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := installdb.Save(root, db); err != nil {
		t.Fatal(err)
	}
}

// relaydProc is relayd run by the shared harness, with the tracking component's controls.
type relaydProc struct{ *relaytest.Relayd }

// startRelayd runs relayd on root with next hop sink and waits until it serves SMTP.
func startRelayd(t testing.TB, root layout.Root, sink string, extra ...string) *relaydProc {
	t.Helper()
	args := append([]string{"--allow", "127.0.0.1/32", "--track-restart-max", "1s"}, extra...)
	return &relaydProc{relaytest.StartRelayd(t, bins.Relayd, root, sink, args...)}
}

// tracking returns the tracking component's status from the running relay.
func (p *relaydProc) tracking(t testing.TB) control.ComponentStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.Ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := st.Component(ComponentName)
	if !ok {
		t.Fatalf("relayd reports no tracking component: %+v", st.Components)
	}
	return c
}

func (p *relaydProc) waitTracking(t *testing.T, within time.Duration, what string, cond func(control.ComponentStatus) bool) control.ComponentStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := p.tracking(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; tracking %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *relaydProc) restartTracking(t *testing.T) (control.ComponentStatus, time.Duration) {
	t.Helper()
	r := p.restart()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.st, r.took
}

// restarted is the outcome of a restart-component request.
type restarted struct {
	st   control.ComponentStatus
	took time.Duration
	err  error
}

// restart asks relayd to restart the tracking component. It may run on any goroutine.
func (p *relaydProc) restart() restarted {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	st, err := p.Ctl.RestartComponent(ctx, ComponentName)
	if err != nil {
		return restarted{err: fmt.Errorf("restart-component tracking: %w", err)}
	}
	return restarted{st: *st, took: time.Since(t0)}
}

func newSink(t testing.TB) *smtpload.Sink {
	t.Helper()
	s, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func runLoad(t *testing.T, opts smtpload.LoadOptions) *smtpload.LoadResult {
	t.Helper()
	if opts.Duration == 0 {
		opts.Duration = 2 * time.Minute
	}
	if opts.Size == 0 {
		opts.Size = 1024
	}
	res, err := smtpload.Load(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// delivered checks that every acknowledged message reached the next hop exactly once.
func delivered(t *testing.T, sink *smtpload.Sink, res *smtpload.LoadResult, n int) {
	t.Helper()
	if res.Acked != n || res.Rejected != 0 || res.ConnErrors != 0 {
		t.Fatalf("load: acked %d of %d, rejected %d, connection errors %d (first error %v)", res.Acked, n, res.Rejected, res.ConnErrors, res.FirstError)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if tally := sink.WaitFor(ctx, res.Acks); tally.Lost != 0 || tally.Duplicates != 0 {
		t.Fatalf("next hop: %v", tally)
	}
}

// trackedInOrder waits until every acknowledged message has its received, queued and delivered
// records, in that order, and returns how many still lack them after a minute. (The next hop
// counts a message just before the relay hears its 250 and records the delivery.)
func trackedInOrder(t *testing.T, root layout.Root, acks map[int]string) int {
	t.Helper()
	want := fmt.Sprint([]track.EventID{track.EventReceived, track.EventQueued, track.EventDelivered})
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := tracklog.Search(root.TrackingLog(), tracklog.Query{})
		if err != nil {
			t.Fatal(err)
		}
		by := make(map[string][]track.EventID)
		for _, r := range recs {
			by[r.MessageID] = append(by[r.MessageID], r.EventID)
		}
		var bad []string
		for seq := range acks {
			id := fmt.Sprintf("<%d.load@example.test>", seq)
			if got := fmt.Sprint(by[id]); got != want {
				bad = append(bad, fmt.Sprintf("message %s: records %s, want %s", id, got, want))
			}
		}
		if len(bad) == 0 || time.Now().After(deadline) {
			for i, b := range bad {
				if i < 5 {
					t.Error(b)
				}
			}
			return len(bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRelaydPrefixBuildCrashesThenHotfixKeepsEveryRecord(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackPrefix, true)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	st := p.waitTracking(t, 20*time.Second, "healthy", healthy)
	if st.Version != stamp.TrackPrefixVersion || st.Protocol != 1 {
		t.Fatalf("tracking %+v: want the SP2 build over protocol 1", st)
	}
	const n = 2000
	res := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 16})
	delivered(t, sink, res, n)
	st = p.waitTracking(t, 20*time.Second, "a crash", func(st control.ComponentStatus) bool { return st.Crashes > 0 })
	for _, want := range []string{"nil pointer dereference", "already delivered and removed", "KB 910618", stamp.TrackPrefixVersion} {
		if !strings.Contains(st.LastExit, want) {
			t.Errorf("last exit %q does not say %q", st.LastExit, want)
		}
	}
	if !strings.Contains(p.Log(), "The tracking component terminated unexpectedly.") {
		t.Errorf("relayd logged no event 7031 line")
	}
	crashes := st.Crashes
	t.Logf("SP2 build under %d messages: %d crash(es), %d events pending; %d msgs/s; last exit: %s",
		n, crashes, st.Pending, int(float64(res.Acked)/res.Elapsed.Seconds()), st.LastExit)
	// The event that crashed it is replayed and crashes it again: a crash loop, never "healthy".
	p.waitTracking(t, 20*time.Second, "a second crash", func(st control.ComponentStatus) bool { return st.Crashes >= 2 })
	if out := ctlStatus(t, root); !regexp.MustCompile(`crash-looping\s+true\s+\d+\s+\d+\s+\d+\s+\d+ crashes in the last 1m0s`).MatchString(out) ||
		strings.Contains(out, "healthy") {
		t.Errorf("relayd ctl status during the crash loop:\n%s", out)
	}

	// The hotfix swaps the file and restarts the component; the kept events are all written.
	install(t, root, bins.TrackFixed, true)
	// Until the restart the old build runs: relayd ctl status says a restart is pending.
	if out := ctlStatus(t, root); !strings.Contains(out, stamp.TrackPrefixVersion+" (restart pending: "+stamp.TrackFixedVersion+" installed)") {
		t.Errorf("relayd ctl status with a new build installed:\n%s", out)
	}
	st, took := p.restartTracking(t)
	if st.Version != stamp.TrackFixedVersion || st.Protocol != 2 || st.Health != control.HealthHealthy {
		t.Fatalf("after restart-component: %+v", st)
	}
	t.Logf("restart-component took %v", took)
	st = p.waitTracking(t, time.Minute, "every event written", func(st control.ComponentStatus) bool { return st.Pending == 0 })
	if st.Version != stamp.TrackFixedVersion {
		t.Fatalf("tracking runs %s after the hotfix", st.Version)
	}
	if lost := trackedInOrder(t, root, res.Acks); lost != 0 {
		t.Fatalf("%d of %d messages lack tracking records", lost, n)
	}
}

// ctlStatus runs the real `relayd ctl status` on root and returns its output.
func ctlStatus(t *testing.T, root layout.Root) string {
	t.Helper()
	out, err := exec.Command(bins.Relayd, "ctl", "status", "--root", string(root)).CombinedOutput()
	if err != nil {
		t.Fatalf("relayd ctl status: %v\n%s", err, out)
	}
	return string(out)
}

func TestRelaydFixedBuildUnderLoad(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackFixed, true)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	p.waitTracking(t, 20*time.Second, "healthy", healthy)
	const n = 2000
	res := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 16})
	delivered(t, sink, res, n)
	st := p.waitTracking(t, time.Minute, "every event written", func(st control.ComponentStatus) bool { return st.Pending == 0 })
	if st.Crashes != 0 || st.Version != stamp.TrackFixedVersion {
		t.Fatalf("fixed build: %+v", st)
	}
	if lost := trackedInOrder(t, root, res.Acks); lost != 0 {
		t.Fatalf("%d of %d messages lack tracking records", lost, n)
	}
	// relayd track shows one message's history, in order, without a running relay's help.
	out, err := exec.Command(bins.Relayd, "track", "--root", string(root), "--message-id", "<7.load@example.test>").CombinedOutput()
	if err != nil {
		t.Fatalf("relayd track: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "1019 received") || !strings.Contains(lines[2], "1020 queued") ||
		!strings.Contains(lines[3], "1031 delivered") || !strings.Contains(lines[3], "dst@sink.invalid") {
		t.Fatalf("relayd track output:\n%s", out)
	}
	t.Logf("fixed build under %d messages: 0 crashes; %d msgs/s", n, int(float64(res.Acked)/res.Elapsed.Seconds()))
}

func TestRelaydRestartComponentDuringLoad(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackFixed, true)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	first := p.waitTracking(t, 20*time.Second, "healthy", healthy)

	// The same paced load twice: once undisturbed, once with two restarts of the component.
	opts := smtpload.LoadOptions{Addr: p.Addr, N: 1200, Concurrency: 8, Rate: 400}
	base := runLoad(t, opts)
	delivered(t, sink, base, opts.N)

	// The restarts come once a third and two thirds of the second load have reached the next
	// hop.
	opts.FirstSeq = opts.N
	restarts := make(chan restarted, 2)
	go func() {
		defer close(restarts)
		for i := range 2 {
			want := opts.N + (i+1)*opts.N/3
			for deadline := time.Now().Add(time.Minute); sink.Count() < want; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					restarts <- restarted{err: fmt.Errorf("the next hop received %d messages in a minute, want %d", sink.Count(), want)}
					return
				}
			}
			restarts <- p.restart()
		}
	}()
	res := runLoad(t, opts)
	pid := first.PID
	for r := range restarts {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.st.PID == pid || r.st.Health != control.HealthHealthy || r.st.Version != stamp.TrackFixedVersion {
			t.Fatalf("restart-component returned %+v (previous pid %d)", r.st, pid)
		}
		pid = r.st.PID
		t.Logf("restart-component took %v", r.took)
	}
	delivered(t, sink, res, opts.N)
	st := p.waitTracking(t, time.Minute, "every event written", func(st control.ComponentStatus) bool { return st.Pending == 0 })
	if st.Crashes != 0 {
		t.Fatalf("crashes during restarts: %+v", st)
	}
	all := make(map[int]string)
	for k, v := range base.Acks {
		all[k] = v
	}
	for k, v := range res.Acks {
		all[k] = v
	}
	if lost := trackedInOrder(t, root, all); lost != 0 {
		t.Fatalf("%d messages lack tracking records", lost)
	}
	t.Logf("SMTP transaction latency: undisturbed max %v p99 %v; with two restart-component max %v p99 %v; added max %v",
		base.MaxLatency(), base.Percentile(99), res.MaxLatency(), res.Percentile(99), max(0, res.MaxLatency()-base.MaxLatency()))
	// A restart must not stall intake: no transaction waits anywhere near a plugin start.
	if res.MaxLatency() > 3*time.Second {
		t.Fatalf("largest SMTP transaction latency during restarts %v", res.MaxLatency())
	}
}
