package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relayfix/internal/layout"
	"relayfix/packages/store"
)

// snapshot returns every file and folder the updater owns under root (product.json, bin/,
// hotfix/), with its mode and the SHA-256 of its content, so that a test can prove a command
// changed nothing byte for byte. The relay's own folders (spool, logs, run) are left out: a
// running relay writes there whatever hotfix does.
func snapshot(t testing.TB, root layout.Root) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, top := range []string{"product.json", "bin", "hotfix"} {
		err := filepath.WalkDir(root.Join(top), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(string(root), p)
			v := fi.Mode().String()
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				v += " " + hex.EncodeToString(sum[:])
			}
			out[rel] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameFiles fails the test with every difference between two snapshots.
func sameFiles(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed %s: %q -> %q", what, p, v, after[p])
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created %s (%s)", what, p, v)
		}
	}
}

// TestReadCommandsChangeNothingAfterAKill kills an apply half way and shows that every
// read-only command reports the interrupted transaction, names 'hotfix recover' and leaves the
// root byte for byte as the kill left it; recover then undoes it.
func TestReadCommandsChangeNothingAfterAKill(t *testing.T) {
	root := freshSP2(t)
	r := hotfix(t, root, []string{"RELAYFIX_CRASH_AT=swapped"}, "apply", e.kb)
	if !r.killed {
		t.Fatalf("apply was not killed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := snapshot(t, root)
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"list"}, 0},
		{[]string{"list", "--json"}, 0},
		{[]string{"list", "--utc"}, 0},
		{[]string{"history"}, 0},
		{[]string{"history", "--json"}, 0},
		{[]string{"verify"}, 1},
		{[]string{"verify", "--json"}, 1},
		{[]string{"check"}, 0},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := hotfix(t, root, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, "hotfix recover") || !strings.Contains(r.stdout+r.stderr, `interrupted at "swapped"`) {
				t.Errorf("does not report the interrupted transaction and name 'hotfix recover':\n%s%s", r.stdout, r.stderr)
			}
			sameFiles(t, strings.Join(tc.args, " "), before, snapshot(t, root))
		})
	}
	for _, args := range [][]string{{"inspect", e.kb}, {"verify", e.kb}, {"verify", e.kb, "--json"}} {
		if r := hotfix(t, root, nil, args...); r.code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		sameFiles(t, strings.Join(args, " "), before, snapshot(t, root))
	}
	out := mustHotfix(t, root, "recover")
	if !strings.Contains(out, "put the previous build back") {
		t.Errorf("recover: %s", out)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
		t.Errorf("after recover msgtrack is %s", v)
	}
	checkConsistent(t, root)
}

// TestNotARootIsRefused runs every command that takes a root on a directory that does not
// exist and on an empty one: each is refused with exit 1 naming the directory, and nothing is
// created. Only a service pack makes a root.
func TestNotARootIsRefused(t *testing.T) {
	corrupt := filepath.Join(t.TempDir(), "SP2-corrupt.hfx")
	b, err := os.ReadFile(e.sp2)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmds := []struct {
		args   []string
		noRoot bool // the error names the directory as not a root
	}{
		{[]string{"list"}, true},
		{[]string{"list", "--json"}, true},
		{[]string{"history"}, true},
		{[]string{"verify"}, true},
		{[]string{"verify", e.kb}, true},
		{[]string{"rollback", "msgtrack"}, true},
		{[]string{"recover"}, true},
		{[]string{"check"}, true},
		{[]string{"source", "list"}, true},
		{[]string{"apply", e.kb, "--pubkey", e.pub}, true},
		{[]string{"apply", "KB910618"}, true},
		{[]string{"apply", corrupt, "--pubkey", e.pub}, false},
	}
	for _, kind := range []string{"missing", "empty"} {
		for _, tc := range cmds {
			t.Run(kind+"/"+strings.Join(tc.args, " "), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "root")
				if kind == "empty" {
					os.Mkdir(dir, 0o755)
				}
				r := hotfix(t, layout.Root(dir), nil, tc.args...)
				if r.code != 1 {
					t.Errorf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
				}
				if want := "not a relayfix install root: " + dir; tc.noRoot && !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q does not say %q", r.stderr, want)
				}
				ents, err := os.ReadDir(dir)
				switch {
				case kind == "missing" && !errors.Is(err, fs.ErrNotExist):
					t.Errorf("created %s (%v)", dir, err)
				case kind == "empty" && len(ents) != 0:
					t.Errorf("created %d entries in %s, first %s", len(ents), dir, ents[0].Name())
				}
			})
		}
	}
	// The one command that makes a root still does.
	root := layout.Root(filepath.Join(t.TempDir(), "root"))
	mustHotfix(t, root, "apply", e.sp2, "--pubkey", e.pub)
	if err := store.CheckRoot(root); err != nil {
		t.Error(err)
	}
}
