package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/packages/store"
)

func TestApplyListRollbackWithoutRelay(t *testing.T) {
	root := layout.Root(t.TempDir() + "/root")

	r := hotfix(t, root, nil, "apply", e.kb, "--pubkey", e.pub)
	if r.code != 1 || !strings.Contains(r.stderr, "KB910618 requires service pack 2") || !strings.Contains(r.stderr, "nothing installed") {
		t.Fatalf("KB910618 on a bare root: exit %d\n%s", r.code, r.stderr)
	}

	out := mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
	if !strings.Contains(out, "Applied SP2") {
		t.Errorf("apply SP2 said:\n%s", out)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("after SP2 msgtrack is %q", v)
	}
	checkConsistent(t, root)

	out = mustHotfix(t, root, "apply", e.kb, "--dry-run")
	for _, want := range []string{"prerequisites: met", "bin/msgtrack", "6.5.7638.1 -> 6.5.7651.45", "restart services: tracking", "reboot: no", "nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("dry run changed msgtrack to %q", v)
	}

	out = mustHotfix(t, root, "apply", e.kb) // the key SP2 came with is trusted now
	if !strings.Contains(out, "relayd is not running") || !strings.Contains(out, "reboot: no") {
		t.Errorf("apply KB910618 without a relay said:\n%s", out)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7651.45" {
		t.Fatalf("after KB910618 msgtrack is %q", v)
	}
	fi, err := os.Stat(root.Bin("msgtrack"))
	if err != nil || !fi.ModTime().Equal(kbDate) {
		t.Errorf("msgtrack mtime %v, want %v (%v)", fi.ModTime(), kbDate, err)
	}
	checkConsistent(t, root)

	out = mustHotfix(t, root, "list", "--utc")
	if !strings.Contains(out, "File name\tFile version\tFile size\tDate\tTime\tPlatform\tPackage") ||
		!strings.Contains(out, "msgtrack\t6.5.7651.45\t") || !strings.Contains(out, "\t14-Feb-2006\t03:36 UTC\t") {
		t.Errorf("list --utc:\n%s", out)
	}

	r = hotfix(t, root, nil, "apply", e.kb)
	if r.code != 0 || r.stdout != "KB910618 is already installed; nothing to do.\n" {
		t.Errorf("second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	out = mustHotfix(t, root, "rollback", "msgtrack")
	if !strings.Contains(out, "6.5.7651.45 -> 6.5.7638.1") {
		t.Errorf("rollback said:\n%s", out)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("after rollback msgtrack is %q", v)
	}
	checkConsistent(t, root)
	r = hotfix(t, root, nil, "rollback", "msgtrack")
	if r.code != 1 || !strings.Contains(r.stderr, "msgtrack 6.5.7638.1 was installed by SP2; there is nothing earlier to roll back to") {
		t.Errorf("second rollback: exit %d %s", r.code, r.stderr)
	}

	var hist []struct{ Package, Action, Result string }
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "history", "--json")), &hist); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		got = append(got, h.Action+" "+h.Package+" "+h.Result)
	}
	// The hotfix refused on the bare root left no history: it created nothing at all.
	want := []string{"apply SP2 committed", "apply KB910618 committed", "rollback msgtrack committed"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("history:\n got %q\nwant %q", got, want)
	}
}

func TestSecondTransactionFailsAtOnce(t *testing.T) {
	root := freshSP2(t)
	l, err := store.AcquireLock(root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	start := time.Now()
	r := hotfix(t, root, nil, "apply", e.kb)
	if r.code != 1 || !strings.Contains(r.stderr, "another hotfix transaction is in progress (pid ") || time.Since(start) > 5*time.Second {
		t.Errorf("concurrent apply: exit %d after %v: %s", r.code, time.Since(start), r.stderr)
	}
}

func TestVerifyRootNamesDrift(t *testing.T) {
	root := freshSP2(t)
	out := mustHotfix(t, root, "verify")
	if !strings.Contains(out, "All 2 installed files match the installed-files database.") {
		t.Fatalf("verify --root on a clean root:\n%s", out)
	}
	now := time.Now()
	if err := os.Chtimes(root.Bin("msgtrack"), now, now); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(root.Bin("relayd"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()

	r := hotfix(t, root, nil, "verify")
	if r.code != 1 {
		t.Fatalf("verify --root with drift: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"bin/msgtrack 6.5.7638.1: date differs (recorded 2005-10-17T12:00:00Z",
		"bin/relayd 6.5.7638.1: size differs",
		"sha256 differs",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify --root output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "2 of 2 installed files drifted") {
		t.Errorf("stderr: %s", r.stderr)
	}
	var rep struct {
		OK    bool
		Files []store.FileCheck
		Error string
	}
	r = hotfix(t, root, nil, "verify", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 || rep.OK || rep.Error == "" {
		t.Errorf("verify --root --json: exit %d %v\n%s", r.code, err, r.stdout)
	}
	if checks := rep.Files; len(checks) != 2 || checks[0].OK || len(checks[1].Drift) < 2 {
		t.Errorf("verify --root --json: exit %d %v\n%s", r.code, err, r.stdout)
	}
}

// changeJSON is what apply and rollback print with --json, as a script reads it.
type changeJSON struct {
	Package string `json:"package"`
	State   string `json:"state"`
	Changed *bool  `json:"changed"`
	Message string `json:"message"`
	Error   string `json:"error"`
	Ready   bool   `json:"ready"`
}

func TestJSONSaysWhetherTheRootChanged(t *testing.T) {
	root, bare := freshSP2(t), layout.Root(t.TempDir())
	tests := []struct {
		name    string
		on      layout.Root
		args    []string
		code    int
		changed bool
		want    string // in message or error
	}{
		{"dry run of a new hotfix", root, []string{"apply", e.kb, "--dry-run"}, 0, true, ""},
		{"apply", root, []string{"apply", e.kb}, 0, true, ""},
		{"apply again", root, []string{"apply", e.kb}, 0, false, "KB910618 is already installed; nothing to do"},
		{"dry run of an installed hotfix", root, []string{"apply", e.kb, "--dry-run"}, 0, false, "KB910618 is already installed; nothing to do"},
		{"service pack again", root, []string{"apply", e.sp2}, 0, false, "SP2 is already installed; nothing to do"},
		{"dry run of another hotfix", root, []string{"apply", e.kbBad, "--dry-run"}, 0, true, ""},
		{"rollback", root, []string{"rollback", "KB910618"}, 0, true, ""},
		{"rollback again", root, []string{"rollback", "KB910618"}, 1, false, "no installed component or hotfix by that name"},
		{"rollback past the service pack", root, []string{"rollback", "msgtrack"}, 1, false, "there is nothing earlier to roll back to"},
		{"no such package", root, []string{"apply", root.Join("nothing.hfx")}, 1, false, "nothing.hfx"},
		{"not a package", root, []string{"apply", e.pub}, 1, false, e.pub},
		{"dry run of a hotfix on a bare root", bare, []string{"apply", e.kb, "--dry-run", "--pubkey", e.pub}, 1, false, "requires service pack 2"},
	}
	for _, tt := range tests {
		r := hotfix(t, tt.on, nil, append(tt.args, "--json")...)
		var got changeJSON
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Errorf("%s: stdout is not one JSON object (%v):\n%s", tt.name, err, r.stdout)
			continue
		}
		if r.code != tt.code || got.Changed == nil || *got.Changed != tt.changed ||
			!strings.Contains(got.Message+got.Error, tt.want) || (tt.code != 0) != (got.Error != "") {
			t.Errorf("%s: exit %d, %+v (changed %v)\n%s%s", tt.name, r.code, got, got.Changed != nil && *got.Changed, r.stdout, r.stderr)
		}
	}
}
