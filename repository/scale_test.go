package repository

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/manifest"
)

// publish200 publishes 200 hotfixes for service pack 2 and returns the repository, its server
// and a client of a root with SP2 installed.
func publish200(tb testing.TB) (*Publisher, *server, *Client, *fixture) {
	tb.Helper()
	f := newFixture(tb)
	sp2 := f.pack(tb, servicePack(2, "6.5.7638"), map[string]string{"bin/relayd": "6.5.7638.1", "bin/msgtrack": "6.5.7638.1"}, sp2Date)
	pkgs := []string{sp2}
	for i := range 199 {
		m := kb910618(tb)
		m.ID, m.Title = fmt.Sprintf("KB92%04d", i), fmt.Sprintf("Tracking fix number %d", i)
		if i > 0 {
			m.Supersedes = []string{fmt.Sprintf("KB92%04d", i-1)}
		}
		m.Files = []manifest.File{{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"}}
		pkgs = append(pkgs, f.pack(tb, m, map[string]string{"bin/msgtrack": fmt.Sprintf("6.5.7700.%d", i)}, kbDate))
	}
	p := publish(tb, f, pkgs...)
	srv := serve(tb, p.Served())
	c := client(tb, p, srv.URL)
	f.apply(tb, c.Root, sp2)
	return p, srv, c, f
}

// Check against 200 packages: under a second, and a second check fetches only the timestamp
// (and asks whether a new root exists); after one package is added, only the new timestamp,
// snapshot and targets. No check downloads a package.
func TestCheck200FetchesOnlyWhatChanged(t *testing.T) {
	p, srv, c, f := publish200(t)
	ctx := context.Background()
	srv.take()

	start := time.Now()
	rep, err := Check(ctx, c)
	cold := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Packages) != 200 {
		t.Fatalf("%d packages, want 200", len(rep.Packages))
	}
	first := srv.take()
	if want := []string{"/2.root.json", "/timestamp.json", "/3.snapshot.json", "/2.targets.json"}; !slices.Equal(first, want) {
		t.Errorf("first check fetched %v, want %v", first, want)
	}

	start = time.Now()
	if _, err := Check(ctx, c); err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	second := srv.take()
	if want := []string{"/2.root.json", "/timestamp.json"}; !slices.Equal(second, want) {
		t.Errorf("second check fetched %v, want only %v", second, want)
	}
	t.Logf("check of 200 packages: first run %v (%d requests), unchanged second run %v (%d requests)", cold, len(first), warm, len(second))
	if cold > time.Second {
		t.Errorf("first check took %v, more than a second", cold)
	}

	extra := kb910618(t)
	extra.ID = "KB930000"
	extra.Files = []manifest.File{{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"}}
	if _, err := p.Add(ctx, []string{f.pack(t, extra, map[string]string{"bin/msgtrack": "6.5.7800.1"}, kbDate)}, []minisign.PublicKey{f.pub}); err != nil {
		t.Fatal(err)
	}
	srv.take()
	rep, err = Check(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	third := srv.take()
	if want := []string{"/2.root.json", "/timestamp.json", "/4.snapshot.json", "/3.targets.json"}; !slices.Equal(third, want) {
		t.Errorf("check after one add fetched %v, want %v", third, want)
	}
	if len(rep.Packages) != 201 {
		t.Errorf("%d packages after the add", len(rep.Packages))
	}
	for _, r := range append(append(first, second...), third...) {
		if strings.HasPrefix(r, "/targets/") {
			t.Errorf("check downloaded a package: %s", r)
		}
	}
}

// BenchmarkCheck200 is one hotfix check of a root against a repository of 200 packages whose
// metadata the root already holds: the daily case.
func BenchmarkCheck200(b *testing.B) {
	_, _, c, _ := publish200(b)
	ctx := context.Background()
	if _, err := Check(ctx, c); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Check(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck200Cold is a first check: every role's metadata is fetched and verified.
func BenchmarkCheck200Cold(b *testing.B) {
	p, srv, _, f := publish200(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		c := client(b, p, srv.URL)
		f.apply(b, c.Root, filepath.Join(f.dir, "SP2.hfx"))
		b.StartTimer()
		if _, err := Check(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
