package safefile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestWriteStreams(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pkg.hfx")
	date := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	n, err := Write(p, Options{Perm: 0o600, ModTime: date}, func(w io.Writer) error {
		_, err := io.Copy(w, strings.NewReader(strings.Repeat("x", 100000)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100000 {
		t.Errorf("Write reported %d bytes, want 100000", n)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 100000 || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(date) {
		t.Errorf("got size %d mode %v mtime %v, want 100000 0600 %v", fi.Size(), fi.Mode().Perm(), fi.ModTime(), date)
	}
}

// TestWriteRefused checks that a write function's error leaves the old file and no temporary.
func TestWriteRefused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "installed.json")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("checksum mismatch")
	_, err := Write(p, Options{}, func(w io.Writer) error {
		w.Write([]byte("half of the new content"))
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("Write = %v, want the write function's error", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("content %q after a refused write, want \"old\"", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only installed.json", len(ents))
	}
}

func TestRemove(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second time there is nothing to remove
		if err := Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove = %v, want not exist", err)
	}
}

func TestJSON(t *testing.T) {
	type rec struct{ Name string }
	p := filepath.Join(t.TempDir(), "journal.json")
	var r rec
	if found, err := ReadJSON(p, "journal", &r); found || err != nil {
		t.Fatalf("ReadJSON of a missing file = %v, %v; want false, nil", found, err)
	}
	if err := WriteJSON(p, rec{"KB910618"}, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, err := ReadJSON(p, "journal", &r); !found || err != nil || r.Name != "KB910618" {
		t.Fatalf("ReadJSON = %v, %v, %+v", found, err, r)
	}
	os.WriteFile(p, []byte("{"), 0o644)
	if _, err := ReadJSON(p, "journal", &r); err == nil || !strings.Contains(err.Error(), "journal "+p+" is corrupt") {
		t.Fatalf("ReadJSON of a torn file = %v", err)
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
