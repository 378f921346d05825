package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/manifest"
	"relayfix/packages/installdb"
	"relayfix/verifier"
)

// fakeBuild returns the bytes of a stand-in executable of the given file version: a real ELF
// header (so the platform reads statically as this machine's), the stamped what-string, and some
// bytes that differ per version. Nothing runs it: the store and the fake relay read versions
// statically, as the real ones do.
func fakeBuild(t *testing.T, version string) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	b := append(head, []byte("\x00"+stamp.Marker+version+stamp.Terminator+"\x00")...)
	for i := 0; i < 8192; i++ {
		b = append(b, byte(i*31)^version[i%len(version)])
	}
	return b
}

// row describes the build of version as the file table row for name at path.
func row(t *testing.T, name, path, version string, date time.Time) manifest.File {
	t.Helper()
	d := verifier.NewDigester()
	d.Write(fakeBuild(t, version))
	dg := d.Digest(date)
	if dg.VersionErr != nil || dg.PlatformErr != nil {
		t.Fatalf("fake build: %v %v", dg.VersionErr, dg.PlatformErr)
	}
	return manifest.File{Name: name, Path: path, Version: manifest.MustParseFileVersion(version), Size: dg.Size,
		Date: date.UTC(), Platform: dg.Platform, SHA256: dg.SHA256}
}

var (
	spDate = time.Date(2005, 10, 13, 9, 0, 0, 0, time.UTC)
	kbDate = time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
)

func sp(t *testing.T, level int, version, build string) *manifest.Manifest {
	return &manifest.Manifest{Schema: 1, ID: fmt.Sprintf("SP%d", level), Title: "Service pack", Kind: manifest.KindServicePack,
		Product: manifest.Product{Name: "relayfix", Version: version, ServicePack: level},
		Files: []manifest.File{
			row(t, "relayd", "bin/relayd", build, spDate),
			row(t, "msgtrack", "bin/msgtrack", build, spDate),
		}}
}

func kb(t *testing.T, id, build string, supersedes ...string) *manifest.Manifest {
	return &manifest.Manifest{Schema: 1, ID: id, Title: "Tracking fix", Kind: manifest.KindHotfix,
		Product:    manifest.Product{Name: "relayfix"},
		Requires:   manifest.Requires{ProductVersion: ">= 6.5.7638", ServicePack: 2},
		Files:      []manifest.File{row(t, "msgtrack", "bin/msgtrack", build, kbDate)},
		Restart:    manifest.Restart{Services: []string{"tracking"}},
		Supersedes: supersedes}
}

// opener stages the builds the manifest names, as archive.Open would after verifying them.
func opener(t *testing.T, m *manifest.Manifest) OpenFunc {
	return func(ctx context.Context, stageDir string) (*Staged, error) {
		st := &Staged{Manifest: m, Files: map[string]string{}}
		if stageDir == "" {
			return st, nil // verify only
		}
		for _, f := range m.Files {
			dst := filepath.Join(stageDir, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(dst, fakeBuild(t, f.Version.String()), 0o755); err != nil {
				return nil, err
			}
			st.Files[f.Path] = dst
		}
		return st, nil
	}
}

// fakeRelay stands in for relayd's control socket: a restarted component "runs" whatever build
// is installed, reporting the version stamped in it; builds listed in bad fail to start.
type fakeRelay struct {
	root     layout.Root
	mu       sync.Mutex
	running  string // version of the build the tracking component runs
	restarts int
	bad      map[string]bool
	off      bool // the operator switched tracking off
}

func (f *fakeRelay) comp() Component {
	h := HealthHealthy
	if f.bad[f.running] {
		h = HealthFailed
	}
	if f.off {
		h = "disabled"
	}
	return Component{Name: "tracking", Binary: f.root.Bin("msgtrack"), Version: f.running, Health: h, Enabled: !f.off}
}

func (f *fakeRelay) Component(ctx context.Context, name string) (Component, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.comp()
	return c, c.Name == name, nil
}

func (f *fakeRelay) Restart(ctx context.Context, name string) (*Component, error) {
	v, err := verifier.ReadFileVersion(f.root.Bin("msgtrack"))
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	f.running = v.String()
	c := f.comp()
	if c.Health == HealthFailed {
		return &c, fmt.Errorf("tracking build %s exited at start", v)
	}
	return &c, nil
}

// checkConsistent asserts the invariant every transaction keeps: each installed file matches its
// database row byte for byte, and nothing is left behind in staging or as a selfupdate temp file.
func checkConsistent(t *testing.T, root layout.Root) *installdb.DB {
	t.Helper()
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range db.Files {
		sum, _, err := hashFile(root.Join(f.Path))
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if sum != f.SHA256 {
			t.Errorf("%s: on disk %s, database says %s (%s)", f.Path, sum[:12], f.SHA256[:12], f.Version)
		}
	}
	ents, _ := os.ReadDir(root.Join("bin"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: bin/%s", e.Name())
		}
	}
	if j, err := LoadJournal(root); err != nil || (j != nil && !j.Finished()) {
		t.Errorf("journal not finished: %+v %v", j, err)
	}
	return db
}

func installedVersion(t *testing.T, root layout.Root, path string) string {
	t.Helper()
	db, err := installdb.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := db.Lookup(path)
	if !ok {
		return ""
	}
	return f.Version.String()
}
