package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relayfix/internal/layout"
	"relayfix/packages"
)

// crashCase kills hotfix with SIGKILL right after it journals step (RELAYFIX_CRASH_AT), then
// runs the next command and checks what recovery made of the root.
type crashCase struct {
	step    string
	finish  bool // recovery finishes (the new build was seen healthy) rather than undoes
	recover bool // the next command is 'hotfix recover' rather than 'hotfix list'
}

// crashSteps are the step boundaries of a transaction without a running relay ("restarted"
// needs one; see the relay tests).
var crashSteps = []crashCase{
	{step: "verified"},
	{step: "staged", recover: true},
	{step: "backed-up"},
	{step: "swapping:0", recover: true},
	{step: "prepared:0"},
	{step: "swapped", recover: true},
	{step: "restarting"},
	{step: "healthy", finish: true, recover: true},
	{step: "committed", finish: true},
}

// crashAndRecover runs hotfix args with the crash step set, checks it died by SIGKILL, runs the
// next command and returns the recovery report when that command was 'hotfix recover'.
func crashAndRecover(t *testing.T, root layout.Root, c crashCase, args ...string) *packages.RecoverReport {
	t.Helper()
	r := hotfix(t, root, []string{"RELAYFIX_CRASH_AT=" + c.step}, args...)
	if !r.killed {
		t.Fatalf("hotfix %v with RELAYFIX_CRASH_AT=%s was not killed: exit %d\n%s%s", args, c.step, r.code, r.stdout, r.stderr)
	}
	if !c.recover {
		return nil
	}
	var rep packages.RecoverReport
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "recover", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	want := packages.RecoveredUndone
	if c.finish {
		want = packages.RecoveredFinished
	}
	if c.step == "committed" {
		want = packages.RecoveredNothing
	}
	if rep.Outcome != want {
		t.Errorf("recover after a kill at %s: %+v, want outcome %q", c.step, rep, want)
	}
	return &rep
}

func TestKillApplyAtEveryStep(t *testing.T) {
	for _, c := range crashSteps {
		t.Run(c.step, func(t *testing.T) {
			t.Parallel()
			root := freshSP2(t)
			crashAndRecover(t, root, c, "apply", e.kb)
			want := "6.5.7638.1"
			if c.finish {
				want = "6.5.7651.45"
			}
			if v := versionOf(t, root, "msgtrack"); v != want {
				t.Errorf("after a kill at %s and recovery msgtrack is %s, want %s", c.step, v, want)
			}
			checkConsistent(t, root)
			// The root works afterwards: the hotfix applies (or is already there).
			r := hotfix(t, root, nil, "apply", e.kb)
			if c.finish != (r.code != 0) {
				t.Errorf("apply after recovery: exit %d %s", r.code, r.stderr)
			}
			checkConsistent(t, root)
		})
	}
}

func TestKillServicePackAtEveryFile(t *testing.T) {
	for _, c := range []crashCase{
		{step: "backed-up"}, {step: "prepared:0", recover: true}, {step: "swapping:1"}, {step: "prepared:1", recover: true},
		{step: "swapped"}, {step: "healthy", finish: true},
	} {
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
	for _, c := range []crashCase{
		{step: "backed-up", recover: true}, {step: "prepared:0"}, {step: "swapped", recover: true},
		{step: "restarting"}, {step: "healthy", finish: true, recover: true},
	} {
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
			prod, _ := packages.LoadProduct(root)
			if has := strings.Contains(strings.Join(prod.Packages, " "), "KB910618"); has == c.finish {
				t.Errorf("product packages %v after a kill at %s", prod.Packages, c.step)
			}
		})
	}
}
