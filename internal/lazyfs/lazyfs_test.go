package lazyfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// mounted mounts a lazyfs over a fresh backing directory holding the files in seed, written
// and synced before the mount, and returns the mount point and the backing directory.
func mounted(t *testing.T, seed map[string]string) (*Mounted, string, string) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	back, mnt := filepath.Join(dir, "back"), filepath.Join(dir, "mnt")
	for _, d := range []string{back, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range seed {
		p := filepath.Join(back, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Mount(back, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.FS.Cut(); m.Unmount() })
	return m, mnt, back
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	must(t, f.Sync())
}

func write(t *testing.T, p, content string, flag int, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, flag, 0o644)
	must(t, err)
	defer f.Close()
	_, err = f.WriteString(content)
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
}

const (
	create = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	appnd  = os.O_WRONLY | os.O_APPEND
)

// absent is the want value of a path that must not exist after the cut.
const absent = "\x00absent"

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		seed map[string]string
		ops  func(t *testing.T, mnt string)
		want map[string]string // backing path → content after the cut (absent: no such file)
	}{
		{"new file, nothing synced, is gone", nil, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "data", create, false)
		}, map[string]string{"a": absent}},
		{"new file synced, its directory not, is gone", nil, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "data", create, true)
		}, map[string]string{"a": absent}},
		{"new file whose directory alone was synced is empty", nil, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "data", create, false)
			syncPath(t, mnt)
		}, map[string]string{"a": ""}},
		{"new file synced, then its directory, is whole", nil, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "data", create, true)
			syncPath(t, mnt)
		}, map[string]string{"a": "data"}},
		{"data written after the directory sync needs the file's own sync", nil, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "", create, false)
			syncPath(t, mnt)
			write(t, mnt+"/a", "late", appnd, true)
			write(t, mnt+"/a", "-unsynced", appnd, false)
		}, map[string]string{"a": "late"}},
		{"an append not synced is dropped", map[string]string{"log": "one\n"}, func(t *testing.T, mnt string) {
			write(t, mnt+"/log", "two\n", appnd, true)
			write(t, mnt+"/log", "three\n", appnd, false)
		}, map[string]string{"log": "one\ntwo\n"}},
		{"appends from two handles land at the end", map[string]string{"log": "0"}, func(t *testing.T, mnt string) {
			f1, err := os.OpenFile(mnt+"/log", appnd, 0)
			must(t, err)
			defer f1.Close()
			f2, err := os.OpenFile(mnt+"/log", appnd, 0)
			must(t, err)
			defer f2.Close()
			for _, f := range []*os.File{f1, f2, f1} {
				_, err := f.WriteString("x")
				must(t, err)
			}
			must(t, f2.Sync())
		}, map[string]string{"log": "0xxx"}},
		{"a truncate not synced is dropped", map[string]string{"a": "keep"}, func(t *testing.T, mnt string) {
			must(t, os.Truncate(mnt+"/a", 1))
		}, map[string]string{"a": "keep"}},
		{"a truncate synced holds, and so does the rewrite after it", map[string]string{"a": "0123456789"}, func(t *testing.T, mnt string) {
			write(t, mnt+"/a", "ab", os.O_WRONLY|os.O_TRUNC, true)
		}, map[string]string{"a": "ab"}},
		{"an overwrite in the middle is written where it belongs", map[string]string{"a": "0123456789"}, func(t *testing.T, mnt string) {
			f, err := os.OpenFile(mnt+"/a", os.O_WRONLY, 0)
			must(t, err)
			defer f.Close()
			_, err = f.WriteAt([]byte("xy"), 4)
			must(t, err)
			must(t, f.Sync())
		}, map[string]string{"a": "0123xy6789"}},
		{"a rename not synced leaves the old name", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			must(t, os.Rename(mnt+"/a", mnt+"/b"))
		}, map[string]string{"a": "v", "b": absent}},
		{"a rename synced moves the name", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			must(t, os.Rename(mnt+"/a", mnt+"/b"))
			syncPath(t, mnt)
		}, map[string]string{"a": absent, "b": "v"}},
		{"rename over a file: the durable target is the new content only after the sync",
			map[string]string{"a": "old"}, func(t *testing.T, mnt string) {
				write(t, mnt+"/tmp", "new", create, true)
				must(t, os.Rename(mnt+"/tmp", mnt+"/a"))
			}, map[string]string{"a": "old", "tmp": absent}},
		{"rename over a file synced: the new content", map[string]string{"a": "old"}, func(t *testing.T, mnt string) {
			write(t, mnt+"/tmp", "new", create, true)
			must(t, os.Rename(mnt+"/tmp", mnt+"/a"))
			syncPath(t, mnt)
		}, map[string]string{"a": "new", "tmp": absent}},
		{"rename across directories, only the target synced: both names",
			map[string]string{"d1/a": "v", "d2/.keep": ""}, func(t *testing.T, mnt string) {
				must(t, os.Rename(mnt+"/d1/a", mnt+"/d2/a"))
				syncPath(t, mnt+"/d2")
			}, map[string]string{"d1/a": "v", "d2/a": "v"}},
		{"rename across directories, only the source synced: neither",
			map[string]string{"d1/a": "v", "d2/.keep": ""}, func(t *testing.T, mnt string) {
				must(t, os.Rename(mnt+"/d1/a", mnt+"/d2/a"))
				syncPath(t, mnt+"/d1")
			}, map[string]string{"d1/a": absent, "d2/a": absent}},
		{"rename across directories, both synced: moved",
			map[string]string{"d1/a": "v", "d2/.keep": ""}, func(t *testing.T, mnt string) {
				must(t, os.Rename(mnt+"/d1/a", mnt+"/d2/a"))
				syncPath(t, mnt+"/d2")
				syncPath(t, mnt+"/d1")
			}, map[string]string{"d1/a": absent, "d2/a": "v"}},
		{"a renamed file synced later is written at its durable names",
			map[string]string{"d1/a": "v", "d2/.keep": ""}, func(t *testing.T, mnt string) {
				must(t, os.Rename(mnt+"/d1/a", mnt+"/d2/a"))
				syncPath(t, mnt+"/d2")
				write(t, mnt+"/d2/a", "w", appnd, true)
			}, map[string]string{"d1/a": "vw", "d2/a": "vw"}},
		{"an unlink not synced leaves the file", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			must(t, os.Remove(mnt+"/a"))
		}, map[string]string{"a": "v"}},
		{"an unlink synced removes it", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			must(t, os.Remove(mnt+"/a"))
			syncPath(t, mnt)
		}, map[string]string{"a": absent}},
		{"a file unlinked while open stays gone when it is written and synced", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			f, err := os.OpenFile(mnt+"/a", os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			must(t, os.Remove(mnt+"/a"))
			syncPath(t, mnt)
			_, err = f.WriteAt([]byte("w"), 1)
			must(t, err)
			must(t, f.Sync())
			b := make([]byte, 2)
			_, err = f.ReadAt(b, 0)
			must(t, err)
			if string(b) != "vw" {
				t.Errorf("the open file reads %q after the unlink, want %q", b, "vw")
			}
		}, map[string]string{"a": absent}},
		{"a file unlinked while open, unlink not synced, keeps its synced data", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			f, err := os.OpenFile(mnt+"/a", os.O_RDWR|os.O_APPEND, 0)
			must(t, err)
			defer f.Close()
			must(t, os.Remove(mnt+"/a"))
			_, err = f.WriteString("w")
			must(t, err)
			must(t, f.Sync())
		}, map[string]string{"a": "vw"}},
		{"mkdir not synced is gone", nil, func(t *testing.T, mnt string) {
			must(t, os.Mkdir(mnt+"/d", 0o755))
			write(t, mnt+"/d/a", "v", create, true)
			syncPath(t, mnt+"/d")
		}, map[string]string{"d": absent, "d/a": absent}},
		{"mkdir synced, file in it not: an empty directory", nil, func(t *testing.T, mnt string) {
			must(t, os.Mkdir(mnt+"/d", 0o755))
			syncPath(t, mnt)
			write(t, mnt+"/d/a", "v", create, true)
		}, map[string]string{"d": "", "d/a": absent}},
		{"mkdir and file, all synced", nil, func(t *testing.T, mnt string) {
			must(t, os.Mkdir(mnt+"/d", 0o755))
			write(t, mnt+"/d/a", "v", create, true)
			syncPath(t, mnt+"/d")
			syncPath(t, mnt)
		}, map[string]string{"d/a": "v"}},
		{"a directory synced before its parent appears whole once the parent is synced", nil, func(t *testing.T, mnt string) {
			must(t, os.MkdirAll(mnt+"/d/e", 0o755))
			write(t, mnt+"/d/e/a", "v", create, true)
			syncPath(t, mnt+"/d/e")
			syncPath(t, mnt+"/d")
			syncPath(t, mnt)
		}, map[string]string{"d/e/a": "v"}},
		{"rmdir synced removes the directory", map[string]string{"d/.keep": ""}, func(t *testing.T, mnt string) {
			must(t, os.Remove(mnt+"/d/.keep"))
			must(t, os.Remove(mnt+"/d"))
			syncPath(t, mnt)
		}, map[string]string{"d": absent}},
		{"a mode change is durable with the file's sync", map[string]string{"a": "v"}, func(t *testing.T, mnt string) {
			must(t, os.Chmod(mnt+"/a", 0o755))
			syncPath(t, mnt+"/a")
		}, map[string]string{"a": "v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, mnt, back := mounted(t, tc.seed)
			tc.ops(t, mnt)
			m.FS.Cut()
			if err := m.Unmount(); err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				p := filepath.Join(back, name)
				st, err := os.Stat(p)
				switch {
				case want == absent:
					if err == nil {
						t.Errorf("%s exists after the cut, want it gone", name)
					}
				case err != nil:
					t.Errorf("%s after the cut: %v", name, err)
				case st.IsDir():
				default:
					got, _ := os.ReadFile(p)
					if !bytes.Equal(got, []byte(want)) {
						t.Errorf("%s after the cut holds %q, want %q", name, got, want)
					}
				}
			}
		})
	}
}

// TestCutStopsEverything checks that after the cut a process still holding the mount gets an
// error and changes nothing in the backing directory, even by fsync.
func TestCutStopsEverything(t *testing.T) {
	m, mnt, back := mounted(t, map[string]string{"a": "v"})
	f, err := os.OpenFile(mnt+"/a", os.O_RDWR|os.O_APPEND, 0)
	must(t, err)
	defer f.Close()
	m.FS.Cut()
	if _, err := f.WriteString("w"); err == nil {
		if err := f.Sync(); err == nil {
			t.Error("write and fsync after the cut succeeded")
		}
	}
	if err := os.WriteFile(mnt+"/b", nil, 0o644); err == nil {
		t.Error("create after the cut succeeded")
	}
	if got, _ := os.ReadFile(back + "/a"); string(got) != "v" {
		t.Errorf("backing file after writes past the cut: %q", got)
	}
	if _, err := os.Stat(back + "/b"); err == nil {
		t.Error("a file created after the cut reached the backing directory")
	}
}

// TestModeAndExec checks that an executable written, synced and renamed into place through the
// mount keeps its mode in the backing directory and runs from the mount.
func TestModeAndExec(t *testing.T) {
	m, mnt, back := mounted(t, nil)
	sh, err := os.ReadFile("/bin/true")
	must(t, err)
	write(t, mnt+"/.t.new", string(sh), create, true)
	must(t, os.Chmod(mnt+"/.t.new", 0o755))
	syncPath(t, mnt+"/.t.new")
	must(t, os.Rename(mnt+"/.t.new", mnt+"/t"))
	syncPath(t, mnt)
	if err := runTrue(mnt + "/t"); err != nil {
		t.Errorf("run from the mount: %v", err)
	}
	m.FS.Cut()
	must(t, m.Unmount())
	st, err := os.Stat(back + "/t")
	must(t, err)
	if st.Mode().Perm() != 0o755 || st.Size() != int64(len(sh)) {
		t.Errorf("backing t: mode %v size %d", st.Mode(), st.Size())
	}
}

// runTrue runs path through a shell outside the mount: the test process serves the mount, and
// Go's vfork-based exec of a file on it can deadlock with a garbage collection (the child waits
// for the server, the collection waits for the forking thread).
func runTrue(path string) error {
	return exec.Command("/bin/sh", "-c", `exec "$0"`, path).Run()
}
