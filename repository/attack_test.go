package repository

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"relayfix/internal/layout"
)

// attackEnv is a repository offering SP2 and KB910618, served on loopback, and a root with SP2
// installed whose one source is that repository.
type attackEnv struct {
	f   *fixture
	pk  packs
	pub *Publisher
	srv *server
	c   *Client
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	f := newFixture(t)
	pk := f.standard(t)
	p := publish(t, f, pk.sp2, pk.kb)
	srv := serve(t, p.Served())
	c := client(t, p, srv.URL)
	f.apply(t, c.Root, pk.sp2)
	return &attackEnv{f: f, pk: pk, pub: p, srv: srv, c: c}
}

// served returns the path of a served file.
func (e *attackEnv) served(name string) string { return filepath.Join(e.pub.Served(), name) }

// packageURLPath is the path the client fetches KB910618 from: targets/SHA256.KB910618.hfx.
func (e *attackEnv) packageURLPath(t *testing.T) string {
	t.Helper()
	ents, _ := os.ReadDir(e.served("targets"))
	for _, en := range ents {
		if strings.HasSuffix(en.Name(), ".KB910618.hfx") {
			return "/targets/" + en.Name()
		}
	}
	t.Fatal("KB910618 not published")
	return ""
}

// refused runs op and checks that it was refused with a message containing want, that the root
// is exactly as before (installed files, database, journal), and that the cache holds nothing.
func (e *attackEnv) refused(t *testing.T, want string, op func() error) {
	t.Helper()
	before := tree(t, string(e.c.Root))
	err := op()
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("not refused: %v", err)
	}
	t.Logf("refused: %v", err)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if after := tree(t, string(e.c.Root)); !reflect.DeepEqual(before, after) {
		t.Errorf("the root changed: %d files before, %d after", len(before), len(after))
	}
	srcs, _ := (Sources{e.c.Root}).List()
	for _, src := range srcs {
		ents, _ := os.ReadDir(Sources{e.c.Root}.CacheDir(src))
		for _, en := range ents {
			t.Errorf("cache holds %s", en.Name())
		}
	}
}

func (e *attackEnv) fetchKB() error {
	_, err := e.c.Fetch(context.Background(), "KB910618")
	return err
}

func (e *attackEnv) refresh() error {
	_, err := e.c.Refresh(context.Background())
	return err
}

func TestRefusesTamperedPackage(t *testing.T) {
	e := newAttackEnv(t)
	path := e.served(strings.TrimPrefix(e.packageURLPath(t), "/"))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // same length, one byte changed
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.refused(t, "package KB910618.hfx does not match its signed length and hash", e.fetchKB)
}

func TestRefusesRollback(t *testing.T) {
	e := newAttackEnv(t)
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(e.served("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The repository moves on, and the client sees it.
	if _, err := e.pub.Add(context.Background(), []string{e.pk.sp1}, []minisign.PublicKey{e.f.pub}); err != nil {
		t.Fatal(err)
	}
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	// A mirror then serves the older, validly signed, unexpired timestamp.
	if err := os.WriteFile(e.served("timestamp.json"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	e.refused(t, "rolled back", e.refresh)
	e.refused(t, "new timestamp version", e.fetchKB)
}

func TestRefusesExpiredMetadata(t *testing.T) {
	e := newAttackEnv(t)
	// A freeze: the repository keeps serving the same metadata, and time passes beyond the
	// timestamp's expiry (two days).
	e.c.Now = func() time.Time { return time.Now().Add(3 * 24 * time.Hour) }
	e.refused(t, "timestamp.json is expired", e.refresh)
	e.refused(t, "a freeze", e.fetchKB)
}

func TestRefusesMixAndMatch(t *testing.T) {
	e := newAttackEnv(t)
	// The current snapshot names targets version 2 (the add); serve version 1's targets, validly
	// signed, under version 2's name.
	v1, err := os.ReadFile(e.served("1.targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.served("2.targets.json"), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	e.refused(t, "expected targets version 2, got 1", e.refresh)
}

// endless answers with the first bytes of a file, or nothing, then more bytes without end (up
// to 64 MiB, so the test is bounded), with no Content-Length.
func endless(prefix []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(prefix)
		chunk := make([]byte, 64<<10)
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

func TestRefusesEndlessMetadata(t *testing.T) {
	e := newAttackEnv(t)
	e.srv.set("/timestamp.json", endless(nil))
	e.refused(t, "metadata is larger than declared (endless data)", e.refresh)
}

func TestRefusesEndlessPackage(t *testing.T) {
	e := newAttackEnv(t)
	p := e.packageURLPath(t)
	b, err := os.ReadFile(e.served(strings.TrimPrefix(p, "/")))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.set(p, endless(b))
	e.refused(t, "package KB910618.hfx is larger than declared (endless data)", e.fetchKB)
}

// resign signs a served role's metadata anew, one version up, with key alone.
func resign[T metadata.Roles](t *testing.T, path string, md *metadata.Metadata[T], key ed25519.PrivateKey, bump func(*metadata.Metadata[T])) {
	t.Helper()
	md, err := md.FromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bump(md)
	md.ClearSignatures()
	if err := sign(md, key); err != nil {
		t.Fatal(err)
	}
	if err := md.ToFile(path, true); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesUntrustedKey(t *testing.T) {
	e := newAttackEnv(t)
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	resign(t, e.served("timestamp.json"), metadata.Timestamp(), attacker, func(m *metadata.Metadata[metadata.TimestampType]) {
		m.Signed.Version++
	})
	e.refused(t, "metadata is not signed by the keys the trusted root names", e.refresh)
}

func TestRefusesRootOfAnotherRepository(t *testing.T) {
	e := newAttackEnv(t)
	other := publish(t, e.f, e.pk.kb)
	trust, err := os.ReadFile(filepath.Join(other.Served(), "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	root := layout.Root(filepath.Join(t.TempDir(), "root"))
	if _, err := (Sources{root}).Add(e.srv.URL, trust); err != nil {
		t.Fatal(err)
	}
	e.c = &Client{Root: root}
	e.refused(t, "is not signed by the keys the trusted root names", e.refresh)
}

func TestFollowsRootKeyRotation(t *testing.T) {
	e := newAttackEnv(t)
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	oldKey, err := e.pub.loadKey(metadata.ROOT)
	if err != nil {
		t.Fatal(err)
	}
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := e.pub.RotateRootKey(newKey); err != nil {
		t.Fatal(err)
	}
	// A client that trusts only version 1 follows the rotation, and keeps the new root.
	cat, err := e.c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	if _, ok := cat.Find("KB910618"); !ok {
		t.Error("KB910618 not offered after rotation")
	}
	src, _ := (Sources{e.c.Root}).List()
	kept, err := metadata.Root().FromFile(filepath.Join(Sources{e.c.Root}.MetadataDir(src[0]), "root.json"))
	if err != nil || kept.Signed.Version != 2 {
		t.Fatalf("trusted root after rotation: version %v, %v", kept.Signed.Version, err)
	}
	newID, _ := mustKey(t, newKey).ID()
	if ids := kept.Signed.Roles[metadata.ROOT].KeyIDs; len(ids) != 1 || ids[0] != newID {
		t.Errorf("trusted root keys %v, want only the new key %s", ids, newID)
	}
	// The old root key, stolen, can no longer sign a root the client follows.
	resign(t, e.served("2.root.json"), metadata.Root(), oldKey, func(m *metadata.Metadata[metadata.RootType]) {
		m.Signed.Version = 3
	})
	os.Rename(e.served("2.root.json"), e.served("3.root.json"))
	e.refused(t, "is not signed by the keys the trusted root names", e.refresh)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustKey(t *testing.T, k ed25519.PrivateKey) *metadata.Key {
	t.Helper()
	mk, err := metadata.KeyFromPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func TestFetchVerifiesAndCaches(t *testing.T) {
	e := newAttackEnv(t)
	path, err := e.c.Fetch(context.Background(), "kb910618")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want, _ := os.ReadFile(e.pk.kb)
	if string(got) != string(want) {
		t.Fatal("fetched package differs from the published one")
	}
	if base := filepath.Base(path); !strings.HasPrefix(path, string(e.c.Root)) || base != sha256Hex(want)+".KB910618.hfx" {
		t.Errorf("cached at %s", path)
	}
	e.srv.take()
	if again, err := e.c.Fetch(context.Background(), "KB910618"); err != nil || again != path {
		t.Fatalf("second fetch: %s, %v", again, err)
	}
	for _, r := range e.srv.take() {
		if strings.HasPrefix(r, "/targets/") {
			t.Errorf("second fetch downloaded %s again", r)
		}
	}
	if _, err := e.c.Fetch(context.Background(), "KB999999"); err == nil || !strings.Contains(err.Error(), "no source offers it") {
		t.Errorf("unknown id: %v", err)
	}
}

// A repository nobody re-signs looks to clients exactly like a freeze; refresh re-signs what is
// about to expire, and clients follow again.
func TestRefreshResignsWhatExpires(t *testing.T) {
	f := newFixture(t)
	pk := f.standard(t)
	p := &Publisher{Dir: filepath.Join(t.TempDir(), "repo"), Now: func() time.Time { return time.Now().Add(-6 * 24 * time.Hour) }}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(context.Background(), []string{pk.kb}, []minisign.PublicKey{f.pub}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, p.Served())
	c := client(t, p, srv.URL)
	if _, err := c.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "timestamp.json is expired") {
		t.Fatalf("refresh of a repository signed six days ago: %v", err)
	}
	p.Now = nil
	roles, err := p.Refresh(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"snapshot", "timestamp"}; !reflect.DeepEqual(roles, want) {
		t.Errorf("re-signed %v, want %v (the snapshot expires within a day)", roles, want)
	}
	cat, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh after re-signing: %v", err)
	}
	if _, ok := cat.Find("KB910618"); !ok {
		t.Error("KB910618 not offered")
	}
	if roles, _ := p.Refresh(24 * time.Hour); !reflect.DeepEqual(roles, []string{"timestamp"}) {
		t.Errorf("second refresh re-signed %v, want only the timestamp", roles)
	}
}

func TestRefusesPackageOverHostLimit(t *testing.T) {
	e := newAttackEnv(t)
	e.c.Limits.Package = 1000
	e.refused(t, "package KB910618.hfx is larger than this host accepts", e.fetchKB)
}

func TestInitTakesGivenKeys(t *testing.T) {
	keys := t.TempDir()
	want := make(map[string]string)
	for _, role := range roles {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		b, err := MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(keys, role+".pem"), b, 0o600)
		want[role], _ = mustKey(t, k).ID()
	}
	p := &Publisher{Dir: filepath.Join(t.TempDir(), "repo"), Keys: keys}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	for _, role := range roles {
		if ids := p.root.Signed.Roles[role].KeyIDs; len(ids) != 1 || ids[0] != want[role] {
			t.Errorf("%s keys %v, want the given key %s", role, ids, want[role])
		}
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "keys")); err == nil {
		t.Error("made keys of its own in DIR/keys")
	}
}

// A repository that cannot be reached is not an attack: the error says so, and is not a refusal.
func TestUnreachableIsNotRefused(t *testing.T) {
	e := newAttackEnv(t)
	e.srv.Close()
	err := e.refresh()
	var re *RefusedError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "metadata could not be downloaded") {
		t.Errorf("unreachable repository: %v", err)
	}
}
