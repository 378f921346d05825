package trackhost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/relay/control"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

// relayd's tracking settings come from its flags or, under the same names, ROOT/relayd.json.
func TestRelaydTrackingConfigFromFile(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackFixed, false) // not in the installed-files database
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	st := p.waitTracking(t, 20*time.Second, "failed", func(st control.ComponentStatus) bool { return st.Health == control.HealthFailed })
	if !strings.Contains(st.Detail, "not installed") {
		t.Fatalf("detail %q", st.Detail)
	}
	p.Signal(syscall.SIGTERM)
	<-p.Done()
	if err := os.WriteFile(root.Config(), []byte(`{"track-unverified": true, "track-escalate": "none"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startRelayd(t, root, sink.Addr())
	st = p.waitTracking(t, 20*time.Second, "healthy", healthy)
	if !strings.Contains(st.Detail, "unverified") {
		t.Fatalf("detail %q: want the unverified note", st.Detail)
	}
}

// relayd ctl tracking off|on: while off no records are written and none are kept, and mail flows.
func TestRelaydTrackingOffAndOn(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackFixed, true)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	p.waitTracking(t, 20*time.Second, "healthy", healthy)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	off, on := false, true
	resp, err := p.Ctl.Do(ctx, control.Request{Op: control.OpSetComponent, Name: ComponentName, Enabled: &off})
	if err != nil || resp.Component == nil || resp.Component.Health != control.HealthDisabled {
		t.Fatalf("tracking off: %+v %v", resp, err)
	}
	res := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: 100, Concurrency: 4})
	delivered(t, sink, res, 100)
	if st := p.tracking(t); st.Pending != 0 || st.Enabled {
		t.Fatalf("while off: %+v", st)
	}
	resp, err = p.Ctl.Do(ctx, control.Request{Op: control.OpSetComponent, Name: ComponentName, Enabled: &on})
	if err != nil || resp.Component == nil || resp.Component.Health != control.HealthHealthy {
		t.Fatalf("tracking on: %+v %v", resp, err)
	}
	res2 := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: 100, Concurrency: 4, FirstSeq: 100})
	delivered(t, sink, res2, 100)
	if lost := trackedInOrder(t, root, res2.Acks); lost != 0 {
		t.Fatalf("%d messages lack records after tracking was switched on", lost)
	}
	// The log has caught up with the messages sent after tracking was switched on; of those
	// received while it was off it holds no receipt. (A delivery the relay recorded just after
	// tracking came back on is written: that event happened while tracking was on.)
	for seq := range res.Acks {
		id := fmt.Sprintf("<%d.load@example.test>", seq)
		recs, err := tracklog.Search(root.TrackingLog(), tracklog.Query{MessageID: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.EventID == track.EventReceived || r.EventID == track.EventQueued {
				t.Fatalf("message %s, received while tracking was off, has record %+v", id, r)
			}
		}
	}
}

// The plugin dies with relayd, even when relayd is killed outright.
func TestPluginDiesWithRelayd(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackFixed, true)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr())
	pid := p.waitTracking(t, 20*time.Second, "healthy", healthy).PID
	p.Kill9()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still runs 5 s after relayd was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The rollback escalation runs `hotfix rollback msgtrack --root ROOT`.
func TestEscalationRollbackRunsHotfix(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackPrefix, true)
	dir := t.TempDir()
	out := filepath.Join(dir, "argv")
	hotfix := filepath.Join(dir, "hotfix")
	os.WriteFile(hotfix, []byte("#!/bin/sh\necho \"$@\" > "+out+".tmp && mv "+out+".tmp "+out+"\n"), 0o755)
	sink := newSink(t)
	p := startRelayd(t, root, sink.Addr(), "--track-escalate", "rollback", "--track-escalate-after", "2",
		"--track-hotfix", hotfix, "--track-restart-delay", "20ms")
	p.waitTracking(t, 20*time.Second, "healthy", healthy)
	res := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: 300, Concurrency: 8})
	delivered(t, sink, res, 300)
	deadline := time.Now().Add(30 * time.Second)
	var argv []byte
	for time.Now().Before(deadline) {
		if argv, _ = os.ReadFile(out); len(argv) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, want := strings.TrimSpace(string(argv)), "rollback msgtrack --root "+string(root); got != want {
		t.Fatalf("hotfix ran with %q, want %q (crashes: %d)", got, want, p.tracking(t).Crashes)
	}
	if !strings.Contains(p.Log(), "Roll the component back to its previous build") {
		t.Errorf("no escalation wording in relayd's log")
	}
}
