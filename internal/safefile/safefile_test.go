package safefile

import (
	"os"
	"path/filepath"
	"testing"

	"relayfix/internal/lazyfs"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "product.json")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	// No temporary file is left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only product.json", len(ents))
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "dir", "f")
	if err := WriteFile(p, []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	if err := SyncDir(filepath.Dir(p)); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

// TestMkdirAllSurvivesPowerCut creates directories and a synced file in them on a file system
// that drops everything not synced, and checks that the file is still there after a cut.
func TestMkdirAllSurvivesPowerCut(t *testing.T) {
	lazyfs.Require(t)
	back, mnt := t.TempDir(), t.TempDir()
	m, err := lazyfs.Mount(back, mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	dir := filepath.Join(mnt, "a", "b")
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("MkdirAll of an existing directory: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.FS.Cut()
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(back, "a", "b", "f")); err != nil || string(b) != "kept" {
		t.Errorf("after the cut: %q, %v", b, err)
	}
}
