package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"relayfix/internal/stamp"
)

// TestStory runs the whole story — SP2, load, the pre-fix crash, KB910618 applied live, a
// rollback and a second apply — against binaries and packages built by the Makefile's own
// recipe, and checks that nothing was lost on the way.
func TestStory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the whole story")
	}
	tmp := t.TempDir()
	bin, dist := filepath.Join(tmp, "bin"), filepath.Join(tmp, "dist")
	mk := exec.Command("make", "-s", "-C", "../..", "packages", "BIN="+bin, "DIST="+dist)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make packages: %v\n%s", err, out)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Options{
		BinDir: bin, DistDir: dist, Root: filepath.Join(tmp, "root"),
		Messages: 2000, Rate: 400, Concurrency: 8, Out: &out,
		PlotPath: filepath.Join(tmp, "live.png"), Timeline: filepath.Join(tmp, "live.csv"),
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v", sum)
	checks := []struct {
		name string
		ok   bool
	}{
		{"every message acknowledged", sum.Acked == 2000+sum.SP3Acked && sum.SP3Acked > 0},
		{"0 messages lost", sum.Lost == 0 && sum.Delivered == sum.Acked},
		{"0 duplicates", sum.Duplicates == 0},
		{"0 tracking records lost", sum.RecordsLost == 0},
		{"every delivered message has its three records", sum.RecordsWritten >= 3*sum.Delivered},
		{"the pre-fix build crashed under load", sum.CrashesBefore > 0},
		{"hotfix check named KB910618 as the fix", sum.CheckNamedFix},
		{"the fixed build did not crash", sum.CrashesAfter == 0},
		{"builds in order SP2, fix, rollback, fix", slices.Equal(sum.Builds, []string{
			stamp.TrackPrefixVersion, stamp.TrackFixedVersion, stamp.TrackPrefixVersion, stamp.TrackFixedVersion})},
		{"SP3 handed relayd over to a new process on its new build", sum.SP3PIDs[0] != sum.SP3PIDs[1] &&
			sum.SP3Versions == [2]string{stamp.RelaydVersion, stamp.RelaydSP3Version}},
		{"no session refused across SP3", sum.SP3Sessions > 0 && sum.SP3Refused == 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: no (%+v)", c.name, sum)
		}
	}
	for _, f := range []string{"live.png", "live.csv"} {
		if fi, err := os.Stat(filepath.Join(tmp, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s was not written: %v", f, err)
		}
	}
	if !strings.Contains(out.String(), "1031 delivered") {
		t.Errorf("the tracking search did not show a delivered record")
	}
}
