package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/packages/archive"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
	"relayfix/verifier"
)

// rootOnTmpfs copies root onto a tmpfs that has only spare bytes free beyond what the root
// holds, so that a write past that fails with ENOSPC as on a full disk.
func rootOnTmpfs(t testing.TB, root layout.Root, spare int64) layout.Root {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root")
	}
	var used int64
	filepath.WalkDir(string(root), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil {
				used += (fi.Size() + 4095) / 4096 * 4096
			}
		}
		return nil
	})
	dir := relaytest.ShortRoot(t)
	if err := syscall.Mount("tmpfs", string(dir), "tmpfs", 0, fmt.Sprintf("size=%d", used+spare)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(string(dir), syscall.MNT_DETACH) })
	if out, err := exec.Command("cp", "-a", string(root)+"/.", string(dir)).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	return dir
}

func TestDiskFull(t *testing.T) {
	st, err := os.Stat(filepath.Join(e.dir, "kb910618", "msgtrack"))
	if err != nil {
		t.Fatal(err)
	}
	build := st.Size()
	tests := []struct {
		name  string
		spare int64
		want  string
	}{
		{"while staging", 2 << 20, "no space left on device"},
		{"while backing up", build + 2<<20, "back up bin/msgtrack"},
		{"while swapping", 2*build + 2<<20, "swap "},
	}
	base := freshSP2(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := rootOnTmpfs(t, base, tt.spare)
			r := hotfix(t, root, nil, "apply", e.kb)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "no space left on device") {
				t.Fatalf("apply on a full disk: exit %d, want an error with %q\n%s%s", r.code, tt.want, r.stdout, r.stderr)
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
			if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
				t.Errorf("msgtrack %s after a failed apply", v)
			}
			checkConsistent(t, root)
			if ents, _ := os.ReadDir(root.Backups()); len(ents) > 0 {
				for _, en := range ents {
					// a failed apply leaves no partial backup copies taking space
					if err := filepath.WalkDir(filepath.Join(root.Backups(), en.Name()), func(p string, d fs.DirEntry, err error) error {
						if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".tmp-") {
							t.Errorf("partial backup left: %s", p)
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

func TestPackageRemovedMidApply(t *testing.T) {
	root := freshSP2(t)
	keys, err := verifier.LoadTrustedKeys(root, "")
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "KB910618.hfx")
	b, err := os.ReadFile(e.kb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pkg, b, 0o644)
	open := func(ctx context.Context, stage string) (*store.Staged, error) {
		o, err := archive.Open(ctx, pkg, archive.OpenOptions{Keys: keys, StageDir: stage})
		if err != nil {
			return nil, err
		}
		return &store.Staged{Manifest: o.Manifest, Files: o.Staged}, nil
	}
	// Removed once verified: the apply goes on from the verified staging copy, re-hashed.
	s := &store.Store{Root: root, Hook: func(step string) {
		if step == "verified" {
			if err := os.Remove(pkg); err != nil {
				t.Error(err)
			}
		}
	}}
	if _, _, err := s.Apply(context.Background(), open, false); err != nil {
		t.Fatalf("apply with the package removed after verification: %v", err)
	}
	if _, err := os.Stat(pkg); err == nil {
		t.Fatal("the hook did not remove the package")
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7651.45" {
		t.Errorf("msgtrack %s", v)
	}
	checkConsistent(t, root)

	// Cut short while being copied in (half of it there): refused, the root unchanged.
	mustHotfix(t, root, "rollback", "KB910618")
	os.WriteFile(pkg, b[:len(b)/2], 0o644)
	r := hotfix(t, root, nil, "apply", pkg)
	if r.code != 1 || !strings.Contains(r.stderr, pkg) {
		t.Errorf("apply of a truncated package: exit %d %s", r.code, r.stderr)
	}
	// Gone before the apply started.
	os.Remove(pkg)
	r = hotfix(t, root, nil, "apply", pkg)
	if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("apply of a removed package: exit %d %s", r.code, r.stderr)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7638.1" {
		t.Errorf("msgtrack %s", v)
	}
	checkConsistent(t, root)
}

func TestCorruptBackupRefusesRollback(t *testing.T) {
	root := freshSP2(t)
	mustHotfix(t, root, "apply", e.kb)
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := db.Lookup("bin/msgtrack")
	if len(f.Previous) != 1 {
		t.Fatalf("previous builds: %+v", f.Previous)
	}
	backup := root.Join(f.Previous[0].Backup)
	fh, err := os.OpenFile(backup, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteAt([]byte("corrupt"), 4096)
	fh.Close()
	dbBefore, _ := os.ReadFile(root.InstalledDB())

	r := hotfix(t, root, nil, "rollback", "msgtrack")
	if r.code != 1 || !strings.Contains(r.stderr, "the backup of bin/msgtrack ("+f.Previous[0].Backup+") is corrupt") ||
		!strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("rollback with a corrupt backup: exit %d\n%s", r.code, r.stderr)
	}
	dbAfter, _ := os.ReadFile(root.InstalledDB())
	if string(dbBefore) != string(dbAfter) {
		t.Error("a refused rollback changed the database")
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7651.45" {
		t.Errorf("msgtrack %s", v)
	}
	checkConsistent(t, root)
	r = hotfix(t, root, nil, "rollback", "KB910618")
	if r.code != 1 || !strings.Contains(r.stderr, "is corrupt") {
		t.Errorf("rollback of the hotfix with a corrupt backup: exit %d %s", r.code, r.stderr)
	}
}
