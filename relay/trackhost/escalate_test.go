package trackhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/relay/control"
	"relayfix/relay/track"
)

func TestEscalationRunsProgram(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackPrefix)
	out := filepath.Join(t.TempDir(), "escalated")
	script := filepath.Join(t.TempDir(), "escalate.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nenv | grep ^RELAYFIX_ | sort > "+out+".tmp && mv "+out+".tmp "+out+"\n"), 0o755)
	cfg := fastConfig()
	cfg.Escalation = Escalation{After: 2, WindowMS: 60000, Action: ActionRun, Program: script}
	hs := start(t, root, db, cfg)
	waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	// A message the relay has already removed crashes the pre-fix build every time it is replayed.
	hs.host.Record(track.Event{Time: time.Now().UTC(), ID: track.EventQueued, QueueID: "GONE"})
	deadline := time.Now().Add(20 * time.Second)
	var b []byte
	for time.Now().Before(deadline) {
		if b, _ = os.ReadFile(out); len(b) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	env := string(b)
	for _, want := range []string{"RELAYFIX_COMPONENT=tracking", "RELAYFIX_FAILURES=2", "RELAYFIX_ROOT=" + string(root), "RELAYFIX_LAST_EXIT=panic: runtime error"} {
		if !strings.Contains(env, want) {
			t.Errorf("escalation environment lacks %q:\n%s", want, env)
		}
	}
	st := hs.host.Status()
	if st.Crashes < 2 || st.Pending != 1 {
		t.Fatalf("status %+v: want at least 2 crashes and the event still pending", st)
	}
}

// waitFile polls for the file at path to hold want, and returns what it holds.
func waitFile(t *testing.T, path, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An escalation program still running when the relay stops is asked to stop with SIGTERM after
// its grace period and may finish what it was doing: hotfix may be mid-transaction. The host
// waits for it.
func TestEscalationStopsWithSIGTERMOnShutdown(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		// what the program writes on SIGTERM and at its end, in order
		want string
	}{
		{"finishes within its grace", 5 * time.Second, "started\nfinished\n"},
		{"asked to stop after its grace", 200 * time.Millisecond, "started\nterm\nfinished\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := layout.Root(t.TempDir())
			db := &installedFiles{}
			db.install(t, root, bins.TrackPrefix)
			dir := t.TempDir()
			out, release := filepath.Join(dir, "out"), filepath.Join(dir, "release")
			// The program works until the test releases it or SIGTERM comes, then takes 300 ms
			// to finish cleanly.
			script := filepath.Join(dir, "escalate.sh")
			os.WriteFile(script, []byte(`#!/bin/sh
trap 'echo term >> `+out+`; sleep 0.3; echo finished >> `+out+`; exit 0' TERM
echo started >> `+out+`
while [ ! -e `+release+` ]; do sleep 0.05; done
sleep 0.3
echo finished >> `+out+`
`), 0o755)
			cfg := fastConfig()
			cfg.Escalation = Escalation{After: 2, WindowMS: 60000, Action: ActionRun, Program: script, GraceMS: int(tt.grace.Milliseconds())}
			hs := start(t, root, db, cfg)
			waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
			hs.host.Record(track.Event{Time: time.Now().UTC(), ID: track.EventQueued, QueueID: "GONE"})
			if got := waitFile(t, out, "started", 20*time.Second); got != "started\n" {
				t.Fatalf("escalation program wrote %q, want it started", got)
			}
			if tt.grace > time.Second {
				os.WriteFile(release, nil, 0o644) // it finishes by itself, within its grace
			}
			t0 := time.Now()
			if err := hs.stop(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			// Run returned only once the program was done: what it wrote is complete now.
			if got, _ := os.ReadFile(out); string(got) != tt.want {
				t.Fatalf("escalation program wrote %q by the time the host stopped, want %q", got, tt.want)
			}
			t.Logf("host stopped in %v", took)
		})
	}
}

// TestFailedEscalationIsNotRetriedAndBackoffGrows: a crash-looping build whose escalation fails
// gets that escalation once, not at every later crash; the escalation does not restart the
// failure window, so the restart delay reaches its cap and the event-7031 count keeps growing;
// and the status calls the component crash-looping, with the count, never healthy.
func TestFailedEscalationIsNotRetriedAndBackoffGrows(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackPrefix)
	runs := filepath.Join(t.TempDir(), "runs")
	script := filepath.Join(t.TempDir(), "escalate.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho run >> "+runs+"\necho 'nothing earlier to roll back to' >&2\nexit 1\n"), 0o755)
	cfg := fastConfig() // restart delay 20 ms doubling to 200 ms
	cfg.Escalation = Escalation{After: 2, WindowMS: 60000, Action: ActionRun, Program: script}
	hs := start(t, root, db, cfg)
	waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	hs.host.Record(track.Event{Time: time.Now().UTC(), ID: track.EventQueued, QueueID: "GONE"})
	st := waitFor(t, 30*time.Second, "8 crashes", func(st control.ComponentStatus) bool { return st.Crashes >= 8 }, hs.host)
	if st.Health != control.HealthCrashLooping || !strings.Contains(st.Detail, "crashes in the last 1m0s") {
		t.Errorf("status after %d crashes: health %q detail %q, want crash-looping with the count", st.Crashes, st.Health, st.Detail)
	}
	if b, _ := os.ReadFile(runs); string(b) != "run\n" {
		t.Errorf("escalation program ran %d times, want once", strings.Count(string(b), "run"))
	}
	logs := hs.logs.String()
	if !strings.Contains(logs, "It has done this 8 time(s)") {
		t.Errorf("event 7031 count does not reach 8 (the window was restarted):\n%s", logs)
	}
	if !strings.Contains(logs, "will be taken in 1") { // 160..200 ms: the cap reached
		t.Errorf("restart delay never reached its cap:\n%s", logs)
	}
	if n := strings.Count(logs, "escalating"); n != 1 {
		t.Errorf("%d escalations logged, want 1", n)
	}
}
