package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relayfix/internal/layout"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
)

// crashCase kills hotfix with SIGKILL right after it journals step (RELAYFIX_CRASH_AT), then
// runs the next command and checks what recovery made of the root.
type crashCase struct {
	step    string
	finish  bool // recovery finishes (the new build was seen healthy) rather than undoes
	over    bool // the transaction was over when killed: recovery has nothing to do
	recover bool // recover runs at once, rather than after a 'hotfix list' that must change nothing
}

// crashCases are the kill points of a transaction that changes the given number of files, taken
// from the store (store.Steps) so that a step added there is killed here too. After every
// other kill 'hotfix list' looks first and must change nothing, so that the read-only path sees
// steps that are finished and steps that are undone; then 'hotfix recover' runs. keep picks the steps: forward ones (with or
// without the one that needs a running relay) or the way back.
func crashCases(files int, keep func(store.Step) bool) []crashCase {
	var out []crashCase
	for _, st := range store.Steps(files) {
		if keep(st) {
			out = append(out, crashCase{step: st.Name, finish: st.Finishes, over: st.Over, recover: len(out)%2 == 1})
		}
	}
	return out
}

func forward(st store.Step) bool        { return !st.Undo }
func forwardNoRelay(st store.Step) bool { return !st.Undo && !st.Relay }
func wayBack(st store.Step) bool        { return st.Undo }

// crashAndRecover runs hotfix args with the crash step set, checks it died by SIGKILL, runs the
// next command and returns the recovery report when that command was 'hotfix recover'.
func crashAndRecover(t testing.TB, root layout.Root, c crashCase, args ...string) *store.RecoverReport {
	t.Helper()
	r := hotfix(t, root, []string{"RELAYFIX_CRASH_AT=" + c.step}, args...)
	if !r.killed {
		t.Fatalf("hotfix %v with RELAYFIX_CRASH_AT=%s was not killed: exit %d\n%s%s", args, c.step, r.code, r.stdout, r.stderr)
	}
	if !c.recover {
		// A read-only command looks first: it must say what happened and change nothing.
		before := snapshot(t, root)
		lr := hotfix(t, root, nil, "list")
		if lr.code != 0 {
			t.Errorf("list after a kill at %s: exit %d\n%s", c.step, lr.code, lr.stderr)
		}
		if !c.over && !strings.Contains(lr.stderr, "hotfix recover") {
			t.Errorf("list after a kill at %s does not name 'hotfix recover': %q", c.step, lr.stderr)
		}
		sameFiles(t, "list after a kill at "+c.step, before, snapshot(t, root))
		mustHotfix(t, root, "recover")
		return nil
	}
	var rep store.RecoverReport
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "recover", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	want := store.RecoveredUndone
	if c.finish {
		want = store.RecoveredFinished
	}
	if c.over {
		want = store.RecoveredNothing
	}
	if rep.Outcome != want {
		t.Errorf("recover after a kill at %s: %+v, want outcome %q", c.step, rep, want)
	}
	return &rep
}

// TestKillLiveApplyAtEveryStep kills a live apply of KB910618 at every step boundary while the
// relay carries mail, and checks after each recovery that the files match the database, that the
// relay runs the build the database lists and, at the end, that no message was lost.
func TestKillLiveApplyAtEveryStep(t *testing.T) {
	root, sink, r := liveSP2(t)
	r.waitTracking(t, "6.5.7638.1")
	// A modest rate: the service pack build crashes under heavy load (the KB 910618 defect), and
	// each step waits for it to be seen healthy again.
	l := startLoad(r.Addr, 30, 50000)

	for _, c := range crashCases(1, forward) {
		t.Run(c.step, func(t *testing.T) {
			crashAndRecover(t, root, c, "apply", e.kb)
			want := "6.5.7638.1"
			if c.finish {
				want = "6.5.7651.45"
			}
			if v := versionOf(t, root, "msgtrack"); v != want {
				t.Errorf("after a kill at %s and recovery msgtrack is %s, want %s", c.step, v, want)
			}
			checkConsistent(t, root)
			runsListedBuild(t, root, r)
			if want == "6.5.7651.45" { // back to the service pack build for the next step
				mustHotfix(t, root, "rollback", "KB910618")
				runsListedBuild(t, root, r)
			}
		})
	}
	// The automatic rollback of a build that fails its health check, killed too.
	for _, c := range crashCases(1, wayBack) {
		t.Run("failing-build/"+c.step, func(t *testing.T) {
			crashAndRecover(t, root, c, "apply", e.kbBad, "--health-timeout", "5s")
			if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
				t.Errorf("after a kill at %s and recovery msgtrack is %s", c.step, v)
			}
			checkConsistent(t, root)
			runsListedBuild(t, root, r)
		})
	}
	noneLost(t, sink, l.stop(t))
}

func TestKillServicePackAtEveryFile(t *testing.T) {
	for _, c := range crashCases(2, forwardNoRelay) {
		t.Run(c.step, func(t *testing.T) {
			t.Parallel()
			root := layout.Root(filepath.Join(t.TempDir(), "root"))
			crashAndRecover(t, root, c, "apply", e.sp2, "--pubkey", e.pub)
			v := versionOf(t, root, "relayd") // the next command, when it was not recover
			db := checkConsistent(t, root)
			if c.finish {
				if len(db.Files) != 2 || v != "6.5.7638.1" {
					t.Errorf("SP2 not finished: %+v", db.Files)
				}
				return
			}
			if len(db.Files) != 0 {
				t.Errorf("an undone SP2 left rows: %+v", db.Files)
			}
			for _, f := range []string{"bin/relayd", "bin/msgtrack", "product.json"} {
				if _, err := os.Stat(root.Join(f)); err == nil {
					t.Errorf("an undone SP2 left %s", f)
				}
			}
			mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
			checkConsistent(t, root)
		})
	}
}

func TestKillRollbackAtEveryStep(t *testing.T) {
	for _, c := range crashCases(1, forwardNoRelay) {
		t.Run(c.step, func(t *testing.T) {
			t.Parallel()
			root := freshSP2(t)
			mustHotfix(t, root, "apply", e.kb)
			crashAndRecover(t, root, c, "rollback", "KB910618")
			want := "6.5.7651.45"
			if c.finish {
				want = "6.5.7638.1"
			}
			if v := versionOf(t, root, "msgtrack"); v != want {
				t.Errorf("after a kill at %s and recovery msgtrack is %s, want %s", c.step, v, want)
			}
			checkConsistent(t, root)
			prod, _ := installdb.LoadProduct(root)
			if has := strings.Contains(strings.Join(prod.Packages, " "), "KB910618"); has == c.finish {
				t.Errorf("product packages %v after a kill at %s", prod.Packages, c.step)
			}
		})
	}
}
