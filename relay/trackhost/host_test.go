package trackhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

// The two msgtrack builds and relayd, built once for the package's tests.
var bins relaytest.Binaries

func TestMain(m *testing.M) {
	relaytest.Main(m, &bins, relaytest.RelaydProgram, relaytest.TrackPrefixProgram, relaytest.TrackFixedProgram)
}

// placePlugin copies bin to ROOT/bin/msgtrack, replacing the file with a rename as hotfix does,
// and returns its SHA-256.
func placePlugin(t testing.TB, root layout.Root, bin string) []byte {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(root.Bin("msgtrack")), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := root.Bin(".msgtrack.new")
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, root.Bin("msgtrack")); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// installedFiles is the installed-files database as the host sees it: the checksums recorded
// for the files of the root. Config.ExpectedSum is its lookup.
type installedFiles struct {
	mu   sync.Mutex
	sums map[string][]byte
}

func (db *installedFiles) ExpectedSum(rel string) ([]byte, bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	sum, ok := db.sums[rel]
	return sum, ok, nil
}

func (db *installedFiles) record(rel string, sum []byte) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.sums == nil {
		db.sums = make(map[string][]byte)
	}
	db.sums[rel] = sum
}

// install places bin as the plugin and records its checksum.
func (db *installedFiles) install(t testing.TB, root layout.Root, bin string) {
	t.Helper()
	db.record(DBPath, placePlugin(t, root, bin))
}

// fakeRelay stands in for the relay core: it keeps queued messages in a map, records the events
// of each message's life, and removes a message once it is delivered, as the relay does.
type fakeRelay struct {
	rec  track.Recorder
	keep bool // never remove delivered messages
	// delivered counts the messages carried to the end, for a test that waits for load.
	delivered atomic.Int64
	mu        sync.Mutex
	q         map[string]track.Properties
}

func (f *fakeRelay) Properties(_ context.Context, id string) (track.Properties, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.q[id]
	if !ok {
		return track.Properties{}, track.ErrNoMessage
	}
	return p, nil
}

// carry relays n messages with conc workers; delivery takes between 0 and 2 ms.
func (f *fakeRelay) carry(prefix string, n, conc int) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range conc {
		wg.Go(func() {
			for i := range next {
				id := fmt.Sprintf("%s%05d", prefix, i)
				ids[i] = id
				p := track.Properties{QueueID: id, MessageID: "<" + id + "@test>", Sender: "s" + id + "@a.example",
					Recipients: []string{"dst@sink.invalid"}, Size: 1000, Subject: "load\t" + id, Received: time.Now().UTC()}
				f.mu.Lock()
				f.q[id] = p
				f.mu.Unlock()
				pp := p
				f.rec.Record(track.Event{Time: time.Now().UTC(), ID: track.EventReceived, QueueID: id, Props: &pp})
				f.rec.Record(track.Event{Time: time.Now().UTC(), ID: track.EventQueued, QueueID: id, Props: &pp})
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				f.rec.Record(track.Event{Time: time.Now().UTC(), ID: track.EventDelivered, QueueID: id,
					Recipient: "dst@sink.invalid", Partner: "127.0.0.1:25", Reply: "250 ok", Props: &pp})
				if !f.keep {
					f.mu.Lock()
					delete(f.q, id)
					f.mu.Unlock()
				}
				f.delivered.Add(1)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return ids
}

type harness struct {
	root  layout.Root
	db    *installedFiles
	host  *Host
	relay *fakeRelay
	logs  *relaytest.LogBuffer
	// stop ends the host and returns what Run returned, or an error if it did not return
	// within 10 s.
	stop func() error
}

// start runs a host on root whose installed-files database is db.
func start(t *testing.T, root layout.Root, db *installedFiles, cfg Config) *harness {
	t.Helper()
	if db != nil {
		cfg.ExpectedSum = db.ExpectedSum
	}
	logs := &relaytest.LogBuffer{}
	h, err := New(Options{Root: root, Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeRelay{rec: h, q: make(map[string]track.Properties)}
	h.SetSource(fr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("host Run: %w", err)
			}
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("host did not stop within 10 s")
		}
	})
	hs := &harness{root: root, db: db, host: h, relay: fr, logs: logs, stop: stop}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	return hs
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func(control.ComponentStatus) bool, h *Host) control.ComponentStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := h.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func healthy(st control.ComponentStatus) bool { return st.Health == control.HealthHealthy }

// checkRecords asserts that every message has its received, queued and delivered records, in
// that order, each exactly once after repeats are dropped.
func checkRecords(t *testing.T, root layout.Root, ids []string) {
	t.Helper()
	recs, err := tracklog.Search(root.TrackingLog(), tracklog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	by := make(map[string][]track.EventID)
	for _, r := range recs {
		by[r.QueueID] = append(by[r.QueueID], r.EventID)
		if r.Sender == "" || r.MessageID == "" {
			t.Errorf("record without properties: %+v", r)
		}
	}
	lost := 0
	for _, id := range ids {
		got := by[id]
		want := []track.EventID{track.EventReceived, track.EventQueued, track.EventDelivered}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			lost++
			if lost < 5 {
				t.Errorf("message %s: records %v, want %v", id, got, want)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d messages lack records", lost, len(ids))
	}
}

func fastConfig() Config {
	c := DefaultConfig()
	c.Restart = RestartPolicy{InitialMS: 20, MaxMS: 200}
	return c
}

func TestFixedBuildUnderLoad(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackFixed)
	hs := start(t, root, db, fastConfig())
	st := waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	if st.Version != stamp.TrackFixedVersion || st.Protocol != 2 || st.PID == 0 {
		t.Fatalf("status %+v: want version %s over protocol 2", st, stamp.TrackFixedVersion)
	}
	ids := hs.relay.carry("F", 2000, 16)
	st = waitFor(t, 30*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	if st.Crashes != 0 {
		t.Fatalf("fixed build crashed %d times: %s", st.Crashes, st.LastExit)
	}
	checkRecords(t, root, ids)
}

func TestPrefixBuildCrashesAndFixedBuildRecovers(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackPrefix)
	hs := start(t, root, db, fastConfig())
	st := waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	if st.Version != stamp.TrackPrefixVersion || st.Protocol != 1 {
		t.Fatalf("status %+v: want version %s over protocol 1", st, stamp.TrackPrefixVersion)
	}
	ids := hs.relay.carry("P", 2000, 16)
	st = waitFor(t, 30*time.Second, "a crash", func(st control.ComponentStatus) bool { return st.Crashes > 0 }, hs.host)
	for _, want := range []string{"nil pointer dereference", "trackplugin.recordsFor", "already delivered and removed", "KB 910618"} {
		if !strings.Contains(st.LastExit, want) {
			t.Errorf("last exit %q does not say %q", st.LastExit, want)
		}
	}
	if !strings.Contains(hs.logs.String(), "The tracking component terminated unexpectedly. It has done this 1 time(s).") {
		t.Errorf("no event 7031 wording in the log")
	}
	// The records the broken build could not write are kept, not lost.
	if st.Pending == 0 {
		t.Fatalf("nothing pending after the crash: %+v", st)
	}
	// Swap the fixed build in as hotfix does, then restart the component.
	hs.db.install(t, root, bins.TrackFixed)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := hs.host.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != stamp.TrackFixedVersion || st.Protocol != 2 || st.Health != control.HealthHealthy {
		t.Fatalf("after restart: %+v", st)
	}
	crashes := st.Crashes
	st = waitFor(t, 30*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	if st.Crashes != crashes {
		t.Fatalf("the fixed build crashed: %s", st.LastExit)
	}
	checkRecords(t, root, ids)
	t.Logf("pre-fix build: %d crash(es) under 2000 messages; last exit: %s", crashes, st.LastExit)
}

// The SP2 build crashes only when it meets a removed message: with a relay that keeps every
// message, the same load passes without a crash and every record is written.
func TestPrefixBuildNeverCrashesOnMessagesStillQueued(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackPrefix)
	hs := start(t, root, db, fastConfig())
	hs.relay.keep = true
	waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	ids := hs.relay.carry("K", 2000, 16)
	st := waitFor(t, 30*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	if st.Crashes != 0 {
		t.Fatalf("SP2 build crashed %d times with every message still queued: %s", st.Crashes, st.LastExit)
	}
	checkRecords(t, root, ids)
}

func TestChecksumMismatchRefused(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	placePlugin(t, root, bins.TrackFixed)
	db.record(DBPath, bytes.Repeat([]byte{0xab}, 32))
	hs := start(t, root, db, fastConfig())
	st := waitFor(t, 10*time.Second, "failed", func(st control.ComponentStatus) bool { return st.Health == control.HealthFailed }, hs.host)
	want := "checksum of bin/msgtrack does not match the installed-files database (want " + strings.Repeat("ab", 32) + ", have "
	if !strings.Contains(st.Detail, want) || st.PID != 0 {
		t.Fatalf("detail %q, want it to contain %q", st.Detail, want)
	}
	if !strings.Contains(hs.logs.String(), "checksum of bin/msgtrack does not match") {
		t.Errorf("mismatch not logged")
	}
	// Events are kept meanwhile, and written once a good build is installed.
	ids := hs.relay.carry("C", 20, 2)
	hs.db.install(t, root, bins.TrackFixed)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if st, err := hs.host.Restart(ctx); err != nil || st.Health != control.HealthHealthy {
		t.Fatalf("restart after fixing: %+v, %v", st, err)
	}
	waitFor(t, 20*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	checkRecords(t, root, ids)
}

func TestNotInstalledPolicy(t *testing.T) {
	tests := []struct {
		name       string
		db         *installedFiles // nil: no lookup at all
		unverified bool
		health     string
		detail     string
	}{
		{"refused", &installedFiles{}, false, control.HealthFailed, "not installed: bin/msgtrack has no record"},
		{"unverified allowed", &installedFiles{}, true, control.HealthHealthy, "unverified: bin/msgtrack has no record"},
		{"no lookup, refused", nil, false, control.HealthFailed, "not installed: bin/msgtrack has no record"},
		{"no lookup, unverified allowed", nil, true, control.HealthHealthy, "unverified: bin/msgtrack has no record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := layout.Root(t.TempDir())
			placePlugin(t, root, bins.TrackFixed) // not recorded
			cfg := fastConfig()
			cfg.Unverified = tt.unverified
			hs := start(t, root, tt.db, cfg)
			st := waitFor(t, 10*time.Second, tt.health, func(st control.ComponentStatus) bool { return st.Health == tt.health }, hs.host)
			if !strings.Contains(st.Detail, tt.detail) {
				t.Fatalf("detail %q, want %q", st.Detail, tt.detail)
			}
		})
	}
}

func TestSwitchOffAndOn(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackFixed)
	hs := start(t, root, db, fastConfig())
	st := waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	pid := st.PID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := hs.host.SetEnabled(ctx, false)
	if err != nil || st.Health != control.HealthDisabled || st.Enabled || st.PID != 0 {
		t.Fatalf("switched off: %+v, %v", st, err)
	}
	if err := exec.Command("kill", "-0", fmt.Sprint(pid)).Run(); err == nil {
		t.Errorf("plugin process %d still runs while tracking is off", pid)
	}
	off := hs.relay.carry("O", 50, 4) // nothing of these is kept
	if _, err := hs.host.Restart(ctx); err == nil {
		t.Errorf("restart while off succeeded")
	}
	st, err = hs.host.SetEnabled(ctx, true)
	if err != nil || st.Health != control.HealthHealthy || !st.Enabled {
		t.Fatalf("switched on: %+v, %v", st, err)
	}
	on := hs.relay.carry("N", 50, 4)
	waitFor(t, 20*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	checkRecords(t, root, on)
	for _, id := range off {
		recs, _ := tracklog.Search(root.TrackingLog(), tracklog.Query{QueueID: id})
		if len(recs) != 0 {
			t.Fatalf("message %s, carried while tracking was off, has records %+v", id, recs)
		}
	}
}

func TestRestartUnderLoadLosesNothing(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackFixed)
	hs := start(t, root, db, fastConfig())
	first := waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	// Load runs in rounds of 200 messages until the restart is over (at most 100 rounds).
	restarted := make(chan struct{})
	done := make(chan []string)
	go func() {
		var ids []string
		for round := 0; round < 100; round++ {
			select {
			case <-restarted:
				done <- ids
				return
			default:
			}
			ids = append(ids, hs.relay.carry(fmt.Sprintf("R%02d-", round), 200, 16)...)
		}
		done <- ids
	}()
	// The restart starts once the load is under way and ends while it still runs.
	for deadline := time.Now().Add(20 * time.Second); hs.relay.delivered.Load() < 200; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the load did not start: %d messages carried in 20 s", hs.relay.delivered.Load())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0, before := time.Now(), hs.relay.delivered.Load()
	st, err := hs.host.Restart(ctx)
	took, during := time.Since(t0), hs.relay.delivered.Load()-before
	close(restarted)
	ids := <-done
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart-component took %v; %d messages carried meanwhile, %d in all", took, during, len(ids))
	if during == 0 {
		t.Fatalf("no message was carried while the component restarted")
	}
	if st.PID == first.PID || st.Version != stamp.TrackFixedVersion || st.Health != control.HealthHealthy {
		t.Fatalf("after restart %+v (before: pid %d)", st, first.PID)
	}
	st = waitFor(t, 30*time.Second, "all events acknowledged", func(st control.ComponentStatus) bool { return st.Pending == 0 }, hs.host)
	if st.Crashes != 0 {
		t.Fatalf("crashes %d: %s", st.Crashes, st.LastExit)
	}
	checkRecords(t, root, ids)
}
