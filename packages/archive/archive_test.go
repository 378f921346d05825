package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/internal/stamp"
	"relayfix/manifest"
	"relayfix/packages/archive/archivetest"
	"relayfix/verifier"
)

// stampedBin is a small Go binary stamped with stamp.TrackFixedVersion, built once in TestMain.
var stampedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "packages-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stampedBin = filepath.Join(dir, "msgtrack")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", stamp.LDFlag(stamp.TrackFixedVersion), "-o", stampedBin, "./testdata/stamped")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test payload: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// StampedTestBinary gives the external examples the stamped test binary.
func StampedTestBinary() string { return stampedBin }

// fileDate is the date the fixture's files carry, the KB 910618 fix's own.
var fileDate = time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)

// fixture is a signed package's ingredients: a key pair, a template and its payload files.
type fixture struct {
	pub     minisign.PublicKey
	priv    minisign.PrivateKey
	tmpl    *manifest.Manifest
	payload map[string]string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		pub:  pub,
		priv: priv,
		tmpl: &manifest.Manifest{
			Schema:   manifest.SchemaVersion,
			ID:       "KB910618",
			Title:    "The message tracking component crashes under heavy load",
			Kind:     manifest.KindHotfix,
			Released: "2006-02-14",
			Product:  manifest.Product{Name: "relayfix"},
			Requires: manifest.Requires{ProductVersion: ">= 6.5.7638", ServicePack: 2},
			Files: []manifest.File{
				{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"},
				{Name: "msgtrack-helper", Path: "lib/tracking/helper", Mode: 0o700},
			},
			Restart: manifest.Restart{Services: []string{"tracking"}},
		},
		payload: map[string]string{"bin/msgtrack": stampedBin, "lib/tracking/helper": stampedBin},
	}
}

// pack writes the fixture's package and returns its bytes and filled manifest.
func (fx *fixture) pack(t testing.TB) ([]byte, *manifest.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Pack(context.Background(), &buf, fx.tmpl, fx.payload, fx.priv, PackOptions{Date: fileDate})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pkg.hfx")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPackOpen(t *testing.T) {
	fx := newFixture(t)
	pkg, m := fx.pack(t)
	for i, f := range m.Files {
		d, err := verifier.DigestFile(fx.payload[f.Path])
		if err != nil {
			t.Fatal(err)
		}
		if f.Size != d.Size || f.SHA256 != d.SHA256 || !f.Date.Equal(fileDate) {
			t.Errorf("file %d %s: filled %d %s %s, source is %d %s", i, f.Path, f.Size, f.SHA256, f.Date, d.Size, d.SHA256)
		}
	}
	if got := m.Files[0].Version.String(); got != stamp.TrackFixedVersion {
		t.Errorf("msgtrack version filled as %s, want %s", got, stamp.TrackFixedVersion)
	}
	if m.Files[0].Platform != "linux/"+goarch() {
		t.Errorf("msgtrack platform %s, want linux/%s", m.Files[0].Platform, goarch())
	}

	stage := filepath.Join(t.TempDir(), "stage")
	o, err := Open(context.Background(), writeTemp(t, pkg), OpenOptions{Keys: []minisign.PublicKey{fx.pub}, StageDir: stage})
	if err != nil {
		t.Fatal(err)
	}
	if o.Manifest.ID != "KB910618" || o.KeyID != fx.pub.ID() {
		t.Errorf("opened %s with key %x", o.Manifest.ID, o.KeyID)
	}
	if !strings.Contains(o.TrustedComment, "id:KB910618") {
		t.Errorf("trusted comment %q does not name the package", o.TrustedComment)
	}
	if len(o.Report) != 2 {
		t.Fatalf("report has %d files, want 2", len(o.Report))
	}
	for _, r := range o.Report {
		if !r.OK() || len(r.Checks) != 5 {
			t.Errorf("report %+v", r)
		}
	}
	for _, f := range m.Files {
		staged := o.Staged[f.Path]
		if staged != filepath.Join(stage, filepath.FromSlash(f.Path)) {
			t.Errorf("%s staged at %q", f.Path, staged)
		}
		rep, err := verifier.CheckFile(staged, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Errorf("staged file: %v", err)
		}
	}
	if fi, err := os.Stat(o.Staged["lib/tracking/helper"]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("helper staged with mode %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(o.Staged["bin/msgtrack"]); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("binary staged with mode %v, %v", fi.Mode(), err)
	}
	if left := tempFiles(t, stage); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Verify-only writes nothing at all.
	if _, err := Open(context.Background(), writeTemp(t, pkg), OpenOptions{Keys: []minisign.PublicKey{fx.pub}}); err != nil {
		t.Fatal(err)
	}
}

func goarch() string {
	out, _ := exec.Command("go", "env", "GOARCH").Output()
	return strings.TrimSpace(string(out))
}

// tempFiles lists the files below dir whose names mark them as temporary.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestRepackRoundTrip(t *testing.T) {
	fx := newFixture(t)
	pkg, _ := fx.pack(t)
	again := archivetest.Repack(t, archivetest.Unpack(t, pkg), nil)
	if _, err := Open(context.Background(), writeTemp(t, again), OpenOptions{Keys: []minisign.PublicKey{fx.pub}}); err != nil {
		t.Fatalf("a package taken apart and put back together no longer opens: %v", err)
	}
}

// bombSize is the run of zeros the decompression-bomb cases carry: 1 GiB in about 32 KiB.
const bombSize = 1 << 30

// tamperCases are ways a signed package can be altered or forged, each with the text its
// rejection must contain: the entry or file, and the check that failed.
func tamperCases(t testing.TB, fx *fixture) []struct {
	name  string
	build func(es []archivetest.Entry, m *manifest.Manifest) []byte
	want  []string
} {
	other := newFixture(t)
	clone := func(m *manifest.Manifest) *manifest.Manifest {
		c := *m
		c.Files = append([]manifest.File(nil), m.Files...)
		return &c
	}
	return []struct {
		name  string
		build func(es []archivetest.Entry, m *manifest.Manifest) []byte
		want  []string
	}{
		{"flipped payload byte", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2].Body[len(es[2].Body)/2] ^= 0x01
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: sha256 mismatch: manifest says " + m0(fx).Files[0].SHA256}},
		{"flipped byte in the second payload", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[3].Body[100] ^= 0x80
			return archivetest.Repack(t, es, nil)
		}, []string{"payload lib/tracking/helper: sha256 mismatch"}},
		{"payload one byte short", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2].Body = es[2].Body[:len(es[2].Body)-1]
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: size mismatch: manifest says", fmt.Sprintf("file has %d", m0(fx).Files[0].Size-1)}},
		{"payload one byte long", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2].Body = append(es[2].Body, 0)
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: size mismatch", fmt.Sprintf("file has %d", m0(fx).Files[0].Size+1)}},
		{"manifest edited after signing", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[0].Body = bytes.Replace(es[0].Body, []byte("heavy load"), []byte("light load"), 1)
			return archivetest.Repack(t, es, nil)
		}, []string{"manifest.json.minisig: signature check failed: manifest.json does not match its signature"}},
		{"wrong file version", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			m = clone(m)
			m.Files[0].Version = manifest.MustParseFileVersion("6.5.7651.46")
			return archivetest.Repack(t, archivetest.Resign(t, es, m, fx.priv), nil)
		}, []string{"payload bin/msgtrack: version mismatch: manifest says 6.5.7651.46, file has " + stamp.TrackFixedVersion}},
		{"wrong platform", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			m = clone(m)
			m.Files[0].Platform = "windows/386"
			return archivetest.Repack(t, archivetest.Resign(t, es, m, fx.priv), nil)
		}, []string{"payload bin/msgtrack: platform mismatch: manifest says windows/386, file has linux/"}},
		{"timestamp one second late", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2].Header.ModTime = es[2].Header.ModTime.Add(time.Second)
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: date mismatch: manifest says 2006-02-14T03:36:00Z, file has 2006-02-14T03:36:01Z"}},
		{"signed by an untrusted key", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			return archivetest.Repack(t, archivetest.Resign(t, es, m, other.priv), nil)
		}, []string{"manifest.json.minisig: signature check failed", verifier.KeyID(other.pub.ID()), "not trusted"}},
		{"trusted comment names another package", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[1].Body = minisign.SignWithComments(fx.priv, es[0].Body, "id:KB1", "")
			return archivetest.Repack(t, es, nil)
		}, []string{"trusted comment names package KB1, manifest is KB910618"}},
		{"entry ../x", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "../x", Mode: 0o644}, Body: []byte("x")})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry ../x: path escapes the package"}},
		{"entry payload/../../x", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es[:2], archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "payload/../../x", Mode: 0o644}, Body: []byte("x")})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/../../x: path escapes the package"}},
		{"absolute path", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "/etc/cron.d/x", Mode: 0o644}, Body: []byte("x")})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry /etc/cron.d/x: absolute path"}},
		{"symlink", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2] = archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "payload/bin/msgtrack", Linkname: "/etc/passwd"}}
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/bin/msgtrack: symlink (to /etc/passwd) not allowed"}},
		{"hard link", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[3] = archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeLink, Name: "payload/lib/tracking/helper", Linkname: "payload/bin/msgtrack"}}
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/lib/tracking/helper: hard link", "not allowed"}},
		{"fifo", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2] = archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "payload/bin/msgtrack"}}
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/bin/msgtrack: device or fifo not allowed"}},
		{"extra unlisted file", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "payload/bin/relayd", Mode: 0o755}, Body: []byte("#!/bin/sh\n")})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/bin/relayd: not in the manifest's file table"}},
		{"duplicate entry", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, es[2])
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: duplicate entry"}},
		{"listed file missing", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			return archivetest.Repack(t, es[:3], nil)
		}, []string{"payload lib/tracking/helper: missing from the archive"}},
		{"manifest not first", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[0], es[2] = es[2], es[0]
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/bin/msgtrack: want manifest.json here"}},
		{"signature missing", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			return archivetest.Repack(t, append(es[:1], es[2:]...), nil)
		}, []string{"archive entry payload/bin/msgtrack: want manifest.json.minisig here"}},
		{"directory outside payload", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry etc/: directory outside payload/"}},
		{"manifest path escaping the root", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			m = clone(m)
			m.Files[1].Path = "../lib/x"
			mb, _ := json.MarshalIndent(m, "", "  ") // Marshal itself refuses such a manifest
			es[0].Body = mb
			es[1].Body = verifier.Sign(fx.priv, m, mb, time.Now())
			es[3].Header.Name = "payload/../lib/x"
			return archivetest.Repack(t, es, nil)
		}, []string{"manifest.json: manifest: files[1].path", "../lib/x"}},
		{"expired", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			m = clone(m)
			exp := time.Date(2007, 1, 1, 0, 0, 0, 0, time.UTC)
			m.Expires = &exp
			return archivetest.Repack(t, archivetest.Resign(t, es, m, fx.priv), nil)
		}, []string{"manifest.json: package KB910618 expired at 2007-01-01T00:00:00Z"}},
		{"trailing garbage in the archive", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			return archivetest.Repack(t, es, []byte("#!/bin/sh\nrm -rf /\n"))
		}, []string{"trailing garbage after the end of the archive"}},
		{"trailing garbage after the compressed stream", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			return append(archivetest.Repack(t, es, nil), "garbage"...)
		}, []string{"read archive"}},
		{"1 GiB of zeros as a listed payload", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[2].Body, es[2].Zeros = nil, bombSize
			return archivetest.Repack(t, es, nil)
		}, []string{"payload bin/msgtrack: size mismatch", fmt.Sprintf("file has %d", bombSize)}},
		{"1 GiB of zeros as an unlisted payload", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "payload/bin/bomb", Mode: 0o755}, Zeros: bombSize})
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry payload/bin/bomb: not in the manifest's file table"}},
		{"1 GiB of zeros as the manifest", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			es[0].Body, es[0].Zeros = nil, bombSize
			return archivetest.Repack(t, es, nil)
		}, []string{"archive entry manifest.json: 1073741824 bytes is over the 1048576-byte limit"}},
		{"1 GiB of zeros after the archive", func(es []archivetest.Entry, m *manifest.Manifest) []byte {
			pkg := archivetest.Repack(t, es, nil)
			return append(pkg, archivetest.ZeroFrames(bombSize)...)
		}, []string{"trailing data after the end of the archive"}},
	}
}

// m0 returns the manifest the fixture packs to.
func m0(fx *fixture) *manifest.Manifest {
	m, err := Fill(context.Background(), fx.tmpl, fx.payload, PackOptions{Date: fileDate})
	if err != nil {
		panic(err)
	}
	return m
}

func TestOpenRefusesTampered(t *testing.T) {
	fx := newFixture(t)
	pkg, m := fx.pack(t)
	for _, tc := range tamperCases(t, fx) {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build(archivetest.Unpack(t, pkg), m)
			stage := filepath.Join(t.TempDir(), "stage")
			o, err := Open(context.Background(), writeTemp(t, b), OpenOptions{Keys: []minisign.PublicKey{fx.pub}, StageDir: stage})
			if err == nil {
				t.Fatalf("opened a tampered package: %+v", o.Report)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			assertEmpty(t, stage)
			if bomb := bytes.Index(b, archivetest.ZeroFrames(bombSize)[:16]); bomb >= 0 {
				assertCapped(t, b, bomb, fx.pub)
			}
		})
	}
}

// assertCapped opens pkg, which holds a 1 GiB run of zeros at offset bomb, from a reader that
// counts what is taken from it, and fails if the reader took half of the bomb's compressed
// blocks: a refusal by the caps stops within a few blocks of the bomb's start, long before the
// gigabyte would be decompressed.
func assertCapped(t *testing.T, pkg []byte, bomb int, key minisign.PublicKey) {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(pkg)}
	if _, err := OpenReader(context.Background(), cr, OpenOptions{Keys: []minisign.PublicKey{key}}); err == nil {
		t.Fatal("OpenReader accepted the bomb")
	}
	limit := int64(bomb) + int64(len(archivetest.ZeroFrames(bombSize)))/2
	if cr.n >= limit {
		t.Errorf("read %d compressed bytes; the bomb spans %d to %d: it was decompressed, not capped", cr.n, bomb, bomb+len(archivetest.ZeroFrames(bombSize)))
	}
	t.Logf("refused after %d compressed bytes; the bomb starts at %d", cr.n, bomb)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// assertEmpty fails unless dir holds no files (it may be missing, or hold nothing at all).
func assertEmpty(t testing.TB, dir string) {
	t.Helper()
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("staging dir not empty after a refused package: %v", left)
	}
}

func TestOpenLimits(t *testing.T) {
	fx := newFixture(t)
	pkg, m := fx.pack(t)
	path := writeTemp(t, pkg)
	tests := []struct {
		name string
		lim  Limits
		want string
	}{
		{"package too big", Limits{MaxPackage: int64(len(pkg)) - 1}, fmt.Sprintf("%d bytes is over the %d-byte limit", len(pkg), len(pkg)-1)},
		{"manifest too big", Limits{MaxManifest: 100}, "archive entry manifest.json: "},
		{"file too big", Limits{MaxFile: m.Files[0].Size - 1}, "manifest.json: file bin/msgtrack: "},
		{"total too big", Limits{MaxTotal: m.Files[0].Size + 10}, "payload totals over the"},
		{"too many entries", Limits{MaxEntries: 3}, "over the 3-entry limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stage := filepath.Join(t.TempDir(), "stage")
			_, err := Open(context.Background(), path, OpenOptions{Keys: []minisign.PublicKey{fx.pub}, StageDir: stage, Limits: tc.lim})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			assertEmpty(t, stage)
		})
	}
	// Limits left zero take the defaults: this package fits them.
	if _, err := Open(context.Background(), path, OpenOptions{Keys: []minisign.PublicKey{fx.pub}, Limits: Limits{MaxEntries: 4}}); err != nil {
		t.Fatalf("a package within the limits: %v", err)
	}
}

func TestOpenCanceled(t *testing.T) {
	fx := newFixture(t)
	pkg, _ := fx.pack(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stage := filepath.Join(t.TempDir(), "stage")
	_, err := Open(ctx, writeTemp(t, pkg), OpenOptions{Keys: []minisign.PublicKey{fx.pub}, StageDir: stage})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	assertEmpty(t, stage)
}

func TestPeek(t *testing.T) {
	fx := newFixture(t)
	pkg, m := fx.pack(t)
	p, err := Peek(context.Background(), writeTemp(t, pkg), Limits{})
	if err != nil || p.ParseErr != nil {
		t.Fatal(err, p.ParseErr)
	}
	if p.Manifest.ID != m.ID || len(p.Manifest.Files) != 2 {
		t.Fatalf("peeked %+v", p.Manifest)
	}
	if _, _, err := p.Verify([]minisign.PublicKey{fx.pub}); err != nil {
		t.Fatalf("the peeked signature does not verify: %v", err)
	}
	// Peek needs no key and reads no payload: a package whose payload is gone still peeks.
	es := archivetest.Unpack(t, pkg)
	if _, err := Peek(context.Background(), writeTemp(t, archivetest.Repack(t, es[:2], nil)), Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestPackSigned(t *testing.T) {
	fx := newFixture(t)
	m, err := Fill(context.Background(), fx.tmpl, fx.payload, PackOptions{Date: fileDate})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig := minisign.Sign(fx.priv, mb) // the legacy algorithm, as older minisign versions sign
	var buf bytes.Buffer
	if _, err := PackSigned(context.Background(), &buf, mb, sig, fx.payload); err != nil {
		t.Fatal(err)
	}
	o, err := Open(context.Background(), writeTemp(t, buf.Bytes()), OpenOptions{Keys: []minisign.PublicKey{fx.pub}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.ManifestBytes, mb) || !bytes.Equal(o.Signature, sig) {
		t.Error("PackSigned did not keep the manifest and signature byte for byte")
	}
	// A payload that differs from the signed manifest is refused at pack time.
	bad := map[string]string{"bin/msgtrack": fx.payload["bin/msgtrack"], "lib/tracking/helper": writeTemp(t, []byte("other"))}
	if _, err := PackSigned(context.Background(), io.Discard, mb, sig, bad); err == nil || !strings.Contains(err.Error(), "lib/tracking/helper: size mismatch") {
		t.Fatalf("got %v", err)
	}
}
