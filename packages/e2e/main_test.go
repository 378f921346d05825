package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/manifest"
	"relayfix/packages/archive"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
)

// env is what TestMain builds once for every test.
type env struct {
	dir     string
	hotfix  string // the hotfix binary
	relayd  string
	track   string // the fixed msgtrack build
	pub     string // demo public key file
	sp2     string // SP2.hfx
	kb      string // KB910618.hfx
	kbBad   string // KB999001.hfx: a tracking build that exits at start
	private minisign.PrivateKey
}

var e env // set once by TestMain, read-only afterwards

var kbDate = time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relayfix-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = setup(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// setup does what `make packages` does: build the binaries, make a key pair, pack SP2 and
// KB910618 from packaging/; and it adds a hotfix whose tracking build exits at start.
func setup(dir string) error {
	mod, err := moduleRoot()
	if err != nil {
		return err
	}
	e.dir = dir
	bins, err := relaytest.Build(context.Background(), dir)
	if err != nil {
		return err
	}
	e.hotfix, e.relayd, e.track = bins.Hotfix, bins.Relayd, bins.TrackFixed
	track1, track2, bad := bins.TrackPrefix, bins.TrackFixed, bins.TrackBroken

	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	e.private = priv
	pt, _ := pub.MarshalText()
	e.pub = filepath.Join(dir, "demo.pub")
	if err := os.WriteFile(e.pub, append(pt, '\n'), 0o644); err != nil {
		return err
	}
	tmpl := func(name string) (*manifest.Manifest, error) {
		b, err := os.ReadFile(filepath.Join(mod, "packaging", name))
		if err != nil {
			return nil, err
		}
		return manifest.ParseTemplate(b)
	}
	sp2, err := tmpl("SP2.json")
	if err != nil {
		return err
	}
	kb, err := tmpl("KB910618.json")
	if err != nil {
		return err
	}
	e.sp2 = filepath.Join(dir, "SP2.hfx")
	if err := pack(e.sp2, sp2, map[string]string{"bin/relayd": e.relayd, "bin/msgtrack": track1}, time.Date(2005, 10, 17, 12, 0, 0, 0, time.UTC)); err != nil {
		return err
	}
	e.kb = filepath.Join(dir, "KB910618.hfx")
	if err := pack(e.kb, kb, map[string]string{"bin/msgtrack": track2}, kbDate); err != nil {
		return err
	}
	badm := *kb
	badm.ID, badm.Title = "KB999001", "A tracking build that exits at start"
	badm.Files = []manifest.File{{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"}}
	e.kbBad = filepath.Join(dir, "KB999001.hfx")
	return pack(e.kbBad, &badm, map[string]string{"bin/msgtrack": bad}, kbDate)
}

func pack(out string, tmpl *manifest.Manifest, payload map[string]string, date time.Time) error {
	var buf bytes.Buffer
	if _, err := archive.Pack(context.Background(), &buf, tmpl, payload, e.private, archive.PackOptions{Date: date}); err != nil {
		return fmt.Errorf("pack %s: %w", tmpl.ID, err)
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// result is one run of hotfix.
type result struct {
	stdout, stderr string
	code           int
	killed         bool // ended by SIGKILL
}

func hotfix(t testing.TB, root layout.Root, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.hotfix, append(args, "--root", string(root))...)
	cmd.Env = append(append(os.Environ(), "TZ=UTC"), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	} else if err != nil {
		t.Fatalf("hotfix %v: %v", args, err)
	}
	return r
}

func mustHotfix(t testing.TB, root layout.Root, args ...string) string {
	t.Helper()
	r := hotfix(t, root, nil, args...)
	if r.code != 0 {
		t.Fatalf("hotfix %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

type listed struct {
	Name, Path, Version, Date, Platform, SHA256, Package string
	Size                                                 int64
}

// versionOf runs `hotfix list --json` (which only reads) and returns msgtrack's version, the
// way the acceptance check finds it: in the object one of whose values contains "msgtrack".
func versionOf(t testing.TB, root layout.Root, name string) string {
	t.Helper()
	var rows []map[string]any
	out := mustHotfix(t, root, "list", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		for _, v := range r {
			if s, ok := v.(string); ok && strings.Contains(s, name) {
				return r["version"].(string)
			}
		}
	}
	return ""
}

// freshSP2 returns a new root with SP2 applied (and the demo key trusted).
func freshSP2(t testing.TB) layout.Root {
	t.Helper()
	root := layout.Root(filepath.Join(t.TempDir(), "root"))
	mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
	return root
}

// checkConsistent asserts that every installed file matches its database row byte for byte,
// that no transaction is left open and that no temporary file is left next to the binaries.
func checkConsistent(t testing.TB, root layout.Root) *installdb.DB {
	t.Helper()
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &store.Store{Root: root}
	checks, err := s.VerifyRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("drift: %s", c)
		}
	}
	if j, err := store.LoadJournal(root); err != nil || (j != nil && !j.Finished()) {
		t.Errorf("journal left open: %+v %v", j, err)
	}
	ents, _ := os.ReadDir(root.Join("bin"))
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".") {
			t.Errorf("left behind: bin/%s", en.Name())
		}
	}
	if ents, _ := os.ReadDir(root.Staging()); len(ents) != 0 {
		t.Errorf("staging not empty: %d entries", len(ents))
	}
	return db
}
