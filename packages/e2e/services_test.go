package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"relayfix/manifest"
	"relayfix/packages/archive/archivetest"
	"relayfix/verifier"
)

// TestUnknownServiceIsRefused shows that a manifest naming a service the relay does not have
// ("trackng") is refused by pack, by verify and by apply (signed by a trusted key, so only the
// service name is wrong), and that the refused apply leaves the root byte for byte as it was.
func TestUnknownServiceIsRefused(t *testing.T) {
	const want = `restart.services[0]: "trackng" is not a service relayfix can restart (known: tracking)`
	dir := t.TempDir()
	es := archivetest.UnpackFile(t, e.kb)
	m, err := manifest.Parse(es[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	services := regexp.MustCompile(`("services":\s*\[\s*)"tracking"`)
	if !services.Match(es[0].Body) {
		t.Fatalf("no services list in\n%s", es[0].Body)
	}
	es[0].Body = services.ReplaceAll(es[0].Body, []byte(`$1"trackng"`))
	es[1].Body = verifier.Sign(e.private, m, es[0].Body, time.Now())
	bad := filepath.Join(dir, "KB910618-trackng.hfx")
	if err := os.WriteFile(bad, archivetest.Repack(t, es, nil), 0o644); err != nil {
		t.Fatal(err)
	}

	// pack, from a template as an author writes it.
	build := filepath.Join(dir, "msgtrack")
	if err := os.WriteFile(build, es[2].Body, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "packaging", "KB910618.json"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl = services.ReplaceAll(tmpl, []byte(`$1"trackng"`))
	if err := os.WriteFile(filepath.Join(dir, "tmpl.json"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	root := freshSP2(t)
	mustHotfix(t, root, "keygen", "-o", filepath.Join(dir, "k"))
	before := snapshot(t, root)
	runs := [][]string{
		{"pack", "--manifest", filepath.Join(dir, "tmpl.json"), "--key", filepath.Join(dir, "k.key"),
			"--file", "bin/msgtrack=" + build, "--date", "2006-02-14T03:36:00Z", "-o", filepath.Join(dir, "out.hfx")},
		{"verify", bad, "--pubkey", e.pub},
		{"apply", bad},
		{"apply", bad, "--dry-run"},
	}
	for _, args := range runs {
		t.Run(args[0]+" "+strings.Join(args[2:], " "), func(t *testing.T) {
			r := hotfix(t, root, nil, args...)
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, want) {
				t.Errorf("exit %d, want 1 and %q\n%s%s", r.code, want, r.stdout, r.stderr)
			}
			sameFiles(t, args[0], before, snapshot(t, root))
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out.hfx")); err == nil {
		t.Error("pack wrote a package naming an unknown service")
	}
}
