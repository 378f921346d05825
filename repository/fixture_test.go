package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/internal/fakebuild"
	"relayfix/internal/layout"
	"relayfix/manifest"
	"relayfix/packages/archive"
	"relayfix/packages/store"
)

// fixture packs packages with a throwaway minisign key, the way hotfix pack does, from stand-in
// builds: the head of this test binary (so the platform reads as this machine's) and a stamped
// file version.
type fixture struct {
	dir  string
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: t.TempDir(), pub: pub, priv: priv}
}

var (
	sp1Date = time.Date(2004, 5, 25, 12, 0, 0, 0, time.UTC)
	sp2Date = time.Date(2005, 10, 17, 12, 0, 0, 0, time.UTC)
	kbDate  = time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
)

func (f *fixture) build(t testing.TB, version string) string {
	t.Helper()
	p := filepath.Join(f.dir, "build-"+version)
	if err := fakebuild.Write(p, version); err != nil {
		t.Fatal(err)
	}
	return p
}

// pack packs m with the builds (install path to four-part version) into ID.hfx.
func (f *fixture) pack(t testing.TB, m *manifest.Manifest, builds map[string]string, date time.Time) string {
	t.Helper()
	payload := make(map[string]string)
	for path, v := range builds {
		payload[path] = f.build(t, v)
	}
	var buf bytes.Buffer
	if _, err := archive.Pack(context.Background(), &buf, m, payload, f.priv, archive.PackOptions{Date: date}); err != nil {
		t.Fatalf("pack %s: %v", m.ID, err)
	}
	out := filepath.Join(f.dir, m.ID+".hfx")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func servicePack(level int, version string) *manifest.Manifest {
	return &manifest.Manifest{Schema: 1, ID: "SP" + string(rune('0'+level)), Title: "relayfix 6.5 Service Pack " + string(rune('0'+level)),
		Kind: manifest.KindServicePack, Released: "2005-10-17",
		Product: manifest.Product{Name: "relayfix", Version: version, ServicePack: level},
		Files: []manifest.File{
			{Name: "relayd", Path: "bin/relayd"},
			{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"},
		}}
}

// kb910618 is the tracking fix as packaging/KB910618.json describes it, fixes included.
func kb910618(t testing.TB) *manifest.Manifest {
	t.Helper()
	b, err := os.ReadFile("../packaging/KB910618.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseTemplate(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// packs are SP1, SP2 and KB910618, packed once per fixture.
type packs struct{ sp1, sp2, kb string }

func (f *fixture) standard(t testing.TB) packs {
	t.Helper()
	return packs{
		sp1: f.pack(t, servicePack(1, "6.5.7226"), map[string]string{"bin/relayd": "6.5.7226.1", "bin/msgtrack": "6.5.7226.1"}, sp1Date),
		sp2: f.pack(t, servicePack(2, "6.5.7638"), map[string]string{"bin/relayd": "6.5.7638.1", "bin/msgtrack": "6.5.7638.1"}, sp2Date),
		kb:  f.pack(t, kb910618(t), map[string]string{"bin/msgtrack": "6.5.7651.45"}, kbDate),
	}
}

// apply applies a package file to root as hotfix apply does, with relayd not running.
func (f *fixture) apply(t testing.TB, root layout.Root, pkg string) {
	t.Helper()
	s := &store.Store{Root: root, HealthTimeout: time.Second}
	open := func(ctx context.Context, stage string) (*store.Staged, error) {
		o, err := archive.Open(ctx, pkg, archive.OpenOptions{Keys: []minisign.PublicKey{f.pub}, StageDir: stage})
		if err != nil {
			return nil, err
		}
		return &store.Staged{Manifest: o.Manifest, Files: o.Staged}, nil
	}
	if _, _, err := s.Apply(context.Background(), open, false); err != nil {
		t.Fatalf("apply %s: %v", filepath.Base(pkg), err)
	}
}

// server serves a repository's directory over HTTP on loopback, counting requests by path. A
// test may replace what a path serves with override.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	override map[string]http.HandlerFunc
}

func serve(t testing.TB, dir string) *server {
	t.Helper()
	s := &server{override: make(map[string]http.HandlerFunc)}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		h := s.override[r.URL.Path]
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// take returns the requests made since the last call.
func (s *server) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

func (s *server) set(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = h
}

// publish makes a repository holding the packages.
func publish(t testing.TB, f *fixture, pkgs ...string) *Publisher {
	t.Helper()
	p := &Publisher{Dir: filepath.Join(t.TempDir(), "repo")}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if len(pkgs) > 0 {
		if _, err := p.Add(context.Background(), pkgs, []minisign.PublicKey{f.pub}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// client returns a client of a fresh root with the repository as its one source, trusting the
// repository's first root version.
func client(t testing.TB, p *Publisher, url string) *Client {
	t.Helper()
	root := layout.Root(filepath.Join(t.TempDir(), "root"))
	trust, err := os.ReadFile(filepath.Join(p.Served(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Sources{root}).Add(url, trust); err != nil {
		t.Fatal(err)
	}
	return &Client{Root: root}
}

// tree lists every file under dir (relative, slash-separated) with its content, leaving out the
// sources' trusted metadata, which a refresh may update.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if strings.Contains(rel, "/metadata/") {
			return nil
		}
		b, _ := os.ReadFile(p)
		out[rel] = string(b)
		return nil
	})
	return out
}
