package powercut

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/lazyfs"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
	"relayfix/relay/control"
)

// hotfixRun runs hotfix with args on root and returns its exit code and output.
func hotfixRun(ctx context.Context, root layout.Root, args ...string) (int, string) {
	cmd := exec.CommandContext(ctx, e.bins.Hotfix, append(args, "--root", string(root))...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.Run()
	return cmd.ProcessState.ExitCode(), out.String()
}

// updater applies and rolls back KB910618 in turn until it is stopped, which kills the command
// that is running: the power went while it ran.
type updater struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	log    []string
}

func startUpdater(root layout.Root, installed bool) *updater {
	ctx, cancel := context.WithCancel(context.Background())
	u := &updater{cancel: cancel}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for ctx.Err() == nil {
			args := []string{"apply", e.kb}
			if installed {
				args = []string{"rollback", "KB910618"}
			}
			code, out := hotfixRun(ctx, root, args...)
			u.mu.Lock()
			u.log = append(u.log, fmt.Sprintf("%s: exit %d\n%s", args[0], code, out))
			u.mu.Unlock()
			if code == 0 {
				installed = !installed
			}
		}
	}()
	return u
}

// kill stops the updater at once, killing the running hotfix.
func (u *updater) kill() {
	u.cancel()
	u.wg.Wait()
}

func kbInstalled(t *testing.T, root layout.Root) bool {
	t.Helper()
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(db.Packages, func(p installdb.InstalledPackage) bool { return p.ID == "KB910618" })
}

// hotfixCuts runs the live hotfix workload n times on one SP2 root: power on, the installed
// relayd under load, KB910618 applied and rolled back in turn, a cut at a random moment; then
// `hotfix recover` on what the disk kept, the install checked, and relayd started again.
func hotfixCuts(t *testing.T, n int) tally {
	r := newRig(t)
	sink := newSink(t)
	r.boot(t)
	if code, out := hotfixRun(context.Background(), r.root, "apply", e.sp2, "--pubkey", e.pub); code != 0 {
		t.Fatalf("apply SP2: exit %d\n%s", code, out)
	}
	// The test process serves the mount, so it must not exec a file on it: Go forks with vfork,
	// and a garbage collection that starts while the child waits for the mount to answer its exec
	// waits for the forking thread in turn, and neither ever goes on. A shell outside the mount
	// execs ROOT/bin/relayd instead, so relayd still runs as the installed file.
	launcher := filepath.Join(t.TempDir(), "relayd")
	if err := os.WriteFile(launcher, []byte("#!/bin/sh\nexec "+r.root.Bin("relayd")+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var s tally
	all := map[int]string{}      // every message acknowledged before a cut
	outcomes := map[string]int{} // what recovery did, over all cuts
	defer func() { t.Logf("hotfix recover after the cuts: %v", outcomes) }()
	next := 0
	for _, c := range cutPoints(t, n, 100*time.Millisecond, 6*time.Second) {
		installed := kbInstalled(t, r.root)
		r.powerOn(t)
		rd := relaytest.StartRelayd(t, launcher, r.root, sink.Addr(), relayArgs...)
		// A modest rate: the service pack build crashes under heavy load (the KB 910618 defect).
		l := startLoad(rd.Addr, next, 40)
		u := startUpdater(r.root, installed)
		time.Sleep(c.after) // the cut moment is random by design
		r.cut(t, u.kill, rd.Kill9)
		acked := l.stop(t)
		maps.Copy(all, acked)
		next += 100000
		s.add(boot(t, r, sink, c, acked, false, func() *relaytest.Relayd {
			outcomes[checkInstall(t, r.root, c)]++
			rd := relaytest.StartRelayd(t, r.root.Bin("relayd"), r.root, sink.Addr(), relayArgs...)
			runsListedBuild(t, r.root, rd, c)
			return rd
		}))
		if t.Failed() {
			u.mu.Lock()
			t.Logf("%v: the updater's commands before the cut:\n%s", c, u.log)
			u.mu.Unlock()
			return s
		}
	}
	if s.trackWaiting > 0 {
		writtenOnceFixed(t, r, sink, all)
	}
	return s
}

// writtenOnceFixed shows that the deliveries the service pack build left in the journal were
// kept, not lost: with the fix applied live, the tracking log records a delivery of every message
// acknowledged before any of the cuts.
func writtenOnceFixed(t *testing.T, r *rig, sink *smtpload.Sink, all map[int]string) {
	t.Helper()
	rd := relaytest.StartRelayd(t, r.root.Bin("relayd"), r.root, sink.Addr(), relayArgs...)
	if !kbInstalled(t, r.root) {
		if code, out := hotfixRun(context.Background(), r.root, "apply", e.kb); code != 0 {
			t.Fatalf("apply KB910618 after the cuts: exit %d\n%s", code, out)
		}
	}
	c := cutPoint{n: 0}
	runsListedBuild(t, r.root, rd, c)
	_, missing, waiting := checkTracking(t, r.root, sink, c, all)
	t.Logf("after the cuts, with KB910618 serving: %d messages acknowledged in all, delivery records missing %d, still waiting %d", len(all), missing, waiting)
	if code := rd.Stop(30 * time.Second); code != 0 {
		t.Errorf("relayd exited %d after SIGTERM", code)
	}
}

// checkInstall runs `hotfix recover` and checks the root it leaves: every installed file equal
// to its database row byte for byte, no transaction open, the product file naming the packages
// the database holds, and a history entry for every installed package and for what recovery did.
func checkInstall(t *testing.T, root layout.Root, c cutPoint) string {
	t.Helper()
	code, out := hotfixRun(context.Background(), root, "recover", "--json")
	if code != 0 {
		t.Fatalf("%v: hotfix recover: exit %d\n%s", c, code, out)
	}
	var rep store.RecoverReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: hotfix recover --json: %v\n%s", c, err, out)
	}
	checks, err := (&store.Store{Root: root}).VerifyRoot(context.Background())
	if err != nil {
		t.Fatalf("%v: verify root: %v", c, err)
	}
	for _, ck := range checks {
		if !ck.OK {
			t.Errorf("%v: after recovery (%s) an installed file differs from the database: %s", c, rep.Outcome, ck)
		}
	}
	if j, err := store.LoadJournal(root); err != nil || (j != nil && !j.Finished()) {
		t.Errorf("%v: journal left open after recovery: %+v %v", c, j, err)
	}
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	prod, err := installdb.LoadProduct(root)
	if err != nil || prod == nil {
		t.Fatalf("%v: product file: %+v %v", c, prod, err)
	}
	var ids []string
	for _, p := range db.Packages {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(prod.Packages, ids) || prod.ServicePack != 2 {
		t.Errorf("%v: product file says SP%d with %v, the database holds %v", c, prod.ServicePack, prod.Packages, ids)
	}
	hist, err := store.LoadHistory(root)
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	recorded := func(tx, result string) bool {
		return slices.ContainsFunc(hist, func(h store.HistoryEntry) bool { return h.ID == tx && h.Result == result })
	}
	for _, p := range db.Packages {
		if !recorded(p.TxID, store.ResultCommitted) {
			t.Errorf("%v: %s is installed (transaction %s) and the history does not say so", c, p.ID, p.TxID)
		}
	}
	switch rep.Outcome {
	case store.RecoveredFinished:
		if !recorded(rep.TxID, store.ResultCommitted) {
			t.Errorf("%v: recovery finished %s and the history does not say so", c, rep.TxID)
		}
	case store.RecoveredUndone:
		if !recorded(rep.TxID, store.ResultRolledBack) {
			t.Errorf("%v: recovery undid %s and the history does not say so", c, rep.TxID)
		}
	}
	return rep.Outcome
}

// runsListedBuild waits until relayd's tracking component runs the build the database lists.
// The service pack build crash-loops under load (the KB 910618 defect), so a build between a
// crash and its restart counts too.
func runsListedBuild(t *testing.T, root layout.Root, rd *relaytest.Relayd, c cutPoint) {
	t.Helper()
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	row, ok := db.Lookup("bin/msgtrack")
	if !ok {
		t.Fatalf("%v: no msgtrack in the database", c)
	}
	var seen control.ComponentStatus
	running := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := rd.Ctl.Status(ctx)
		if err != nil {
			return false // between two builds relayd may not answer for a moment
		}
		seen, _ = st.Component("tracking")
		up := seen.Health == control.HealthHealthy || seen.Health == control.HealthRestarting || seen.Health == control.HealthStarting
		return up && seen.Version == row.Version.String()
	}
	if !poll(15*time.Second, running) {
		t.Errorf("%v: relayd's tracking does not run %s, the build the database lists; last %+v", c, row.Version, seen)
	}
}

func TestPowerCutLiveHotfix(t *testing.T) {
	lazyfs.Require(t)
	s := hotfixCuts(t, cutShare())
	s.log(t, "live hotfix apply and rollback")
}

// TestPowerCutAfterSwap is the cut that found the unsynced backup folders: hotfix apply is
// killed right after it swapped the fixed build in (RELAYFIX_CRASH_AT=swapped), the power goes,
// and recovery must put the service pack build back from its backup. The backup had been synced
// into hotfix/backup/TX/bin, but the names of those new folders had not, so the cut took the
// backup and recovery failed.
func TestPowerCutAfterSwap(t *testing.T) {
	lazyfs.Require(t)
	r := newRig(t)
	r.boot(t)
	if code, out := hotfixRun(context.Background(), r.root, "apply", e.sp2, "--pubkey", e.pub); code != 0 {
		t.Fatalf("apply SP2: exit %d\n%s", code, out)
	}
	for _, step := range []string{"backed-up", "swapped"} {
		t.Run(step, func(t *testing.T) {
			r.powerOn(t)
			cmd := exec.Command(e.bins.Hotfix, "apply", e.kb, "--root", string(r.root))
			cmd.Env = append(os.Environ(), "RELAYFIX_CRASH_AT="+step)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
				t.Fatalf("hotfix apply with RELAYFIX_CRASH_AT=%s was not killed: %v\n%s", step, err, out)
			}
			r.cut(t)
			r.boot(t)
			c := cutPoint{n: 1}
			checkReadable(t, r.back, c)
			if outcome := checkInstall(t, r.root, c); outcome != store.RecoveredUndone {
				t.Errorf("recovery after a cut at %s: %s, want %s", step, outcome, store.RecoveredUndone)
			}
			if kbInstalled(t, r.root) {
				t.Errorf("KB910618 is installed after recovery undid its apply")
			}
		})
	}
}
