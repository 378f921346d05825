package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"relayfix/internal/fakebuild"
	"relayfix/manifest"
	"relayfix/packages/installdb"
)

// packSP3 packs a service pack 3 that holds only bin/relayd 6.5.7700.1.
func packSP3(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "SP2.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseTemplate(b)
	if err != nil {
		t.Fatal(err)
	}
	m.ID, m.Title = "SP3", "relayfix 6.5 Service Pack 3"
	m.Product.Version, m.Product.ServicePack = "6.5.7700", 3
	m.Files = []manifest.File{{Name: "relayd", Path: "bin/relayd", Version: manifest.MustParseFileVersion("6.5.7700.1")}}
	relayd := filepath.Join(dir, "relayd")
	if err := fakebuild.Write(relayd, "6.5.7700.1"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "SP3.hfx")
	if err := pack(out, m, map[string]string{"bin/relayd": relayd}, kbDate); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServicePackGoesBackAsAWhole replays the dead end a component rollback used to leave
// (SP3 with only bin/relayd, applied, then 'rollback relayd': relayd back at the SP2 build while
// product.json said SP3, and no command could move the root) and shows that the component
// rollback is refused with the command that works, that the service pack goes back as a whole
// (its files and the product level), that it is refused while a hotfix installed after it is
// there, and that every state reached can be moved forward and back again.
func TestServicePackGoesBackAsAWhole(t *testing.T) {
	sp3 := packSP3(t)
	root := freshSP2(t)
	sp2Relayd, err := os.ReadFile(root.Bin("relayd"))
	if err != nil {
		t.Fatal(err)
	}
	sp2Product, err := os.ReadFile(root.Product())
	if err != nil {
		t.Fatal(err)
	}
	mustHotfix(t, root, "apply", sp3)
	if v := versionOf(t, root, "relayd"); v != "6.5.7700.1" {
		t.Fatalf("after SP3 relayd is %s", v)
	}

	refused := func(t *testing.T, want string, args ...string) {
		t.Helper()
		before := snapshot(t, root)
		r := hotfix(t, root, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: exit %d, want 1 and %q\n%s%s", args, r.code, want, r.stdout, r.stderr)
		}
		sameFiles(t, strings.Join(args, " "), before, snapshot(t, root))
	}
	refused(t, "relayd 6.5.7700.1 was installed by the service pack SP3, which goes back only as a whole: run 'hotfix rollback SP3'", "rollback", "relayd")
	refused(t, "relayd 6.5.7700.1 was installed by the service pack SP3", "rollback", "bin/relayd")
	refused(t, "SP2 is the service pack that created this root", "rollback", "SP2")
	refused(t, "what can be rolled back: SP3", "rollback", "relyd")

	// A hotfix applied on top holds the service pack in place until it goes back itself.
	mustHotfix(t, root, "apply", e.kb)
	refused(t, "SP3 is required by KB910618, installed after it: roll it back first ('hotfix rollback KB910618')", "rollback", "SP3")
	refused(t, "what can be rolled back: msgtrack, SP3, KB910618", "rollback", "relyd")
	mustHotfix(t, root, "rollback", "KB910618")

	for round := range 2 {
		out := mustHotfix(t, root, "rollback", "SP3")
		if !strings.Contains(out, "Rolled back SP3") || !strings.Contains(out, "bin/relayd     6.5.7700.1 -> 6.5.7638.1") {
			t.Errorf("round %d: rollback SP3 said:\n%s", round, out)
		}
		got, _ := os.ReadFile(root.Bin("relayd"))
		if !bytes.Equal(got, sp2Relayd) {
			t.Errorf("round %d: bin/relayd is not the SP2 build byte for byte", round)
		}
		prod, err := installdb.LoadProduct(root)
		if err != nil {
			t.Fatal(err)
		}
		if prod.Version != "6.5.7638" || prod.ServicePack != 2 || strings.Join(prod.Packages, ",") != "SP2" {
			t.Errorf("round %d: product after rollback SP3: %+v (SP2 wrote %s)", round, prod, sp2Product)
		}
		checkConsistent(t, root)
		refused(t, "rollback SP3: no installed component or hotfix by that name; nothing installed here can be rolled back", "rollback", "SP3")
		// Nothing is stuck: the service pack goes on again.
		out = mustHotfix(t, root, "apply", sp3)
		if !strings.Contains(out, "Applied SP3") {
			t.Errorf("round %d: apply SP3 again said:\n%s", round, out)
		}
		if v := versionOf(t, root, "relayd"); v != "6.5.7700.1" {
			t.Errorf("round %d: after SP3 again relayd is %s", round, v)
		}
		checkConsistent(t, root)
	}
}

// TestRestartPendingWhileRelaydRunsTheOldBuild applies SP3, which replaces bin/relayd, while
// the SP2 relayd runs: apply and list must say that relayd still runs the old build and a
// restart is pending, in text and JSON; rolling SP3 back, live, puts the running build and the
// installed one in step again.
func TestRestartPendingWhileRelaydRunsTheOldBuild(t *testing.T) {
	sp3 := packSP3(t)
	root, _, r := liveSP2(t)
	r.waitTracking(t, "6.5.7638.1")
	const pending = "relayd runs 6.5.7638.1 but bin/relayd 6.5.7700.1 is installed: restart pending"

	out := mustHotfix(t, root, "apply", sp3)
	if !strings.Contains(out, pending) || !strings.Contains(out, "relayd still runs the previous build until it restarts") {
		t.Errorf("apply SP3 under a running relayd said:\n%s", out)
	}
	if out := mustHotfix(t, root, "list"); !strings.Contains(out, pending) {
		t.Errorf("list does not show the pending restart:\n%s", out)
	}
	var rows []struct {
		Path, Version, Running string
		RestartPending         bool `json:"restart_pending"`
	}
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		want := row.Path == "bin/relayd"
		if row.RestartPending != want || (want && row.Running != "6.5.7638.1") {
			t.Errorf("list --json row %+v: restart_pending %v, want %v", row, row.RestartPending, want)
		}
	}

	type report struct {
		Changed        bool
		State          string
		RestartPending []installdb.Stale `json:"restart_pending"`
	}
	var rep report
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "rollback", "SP3", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Changed || len(rep.RestartPending) != 0 {
		t.Errorf("rollback SP3 under the SP2 relayd: %+v", rep)
	}
	if out := mustHotfix(t, root, "list"); strings.Contains(out, "restart pending") {
		t.Errorf("list after rollback SP3:\n%s", out)
	}
	rep = report{}
	if err := json.Unmarshal([]byte(mustHotfix(t, root, "apply", sp3, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	want := []installdb.Stale{{Name: "relayd", Path: "bin/relayd", Running: "6.5.7638.1", Installed: "6.5.7700.1"}}
	if !rep.Changed || !reflect.DeepEqual(rep.RestartPending, want) {
		t.Errorf("apply SP3 --json: %+v, want restart_pending %+v", rep, want)
	}
	// The tracking component, restarted by the hotfix, is not pending.
	mustHotfix(t, root, "apply", e.kb)
	if out := mustHotfix(t, root, "list"); strings.Count(out, "restart pending") != 1 {
		t.Errorf("list after KB910618:\n%s", out)
	}
}
