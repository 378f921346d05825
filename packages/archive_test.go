package packages

import (
	"archive/tar"
	"bytes"
	"context"
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
	"github.com/klauspost/compress/zstd"

	"relayfix/internal/stamp"
	"relayfix/manifest"
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

// entry is one archive entry for building packages by hand.
type entry struct {
	hdr  tar.Header
	body []byte
	// zeros, when set, is a run of zero bytes appended as the body, compressed as zstd RLE blocks
	// so that a gigabyte costs a few kilobytes to store and nothing to build.
	zeros int64
}

// unpack reads a package into its entries.
func unpack(t testing.TB, pkg []byte) []entry {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	var es []entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{hdr: *hdr, body: b})
	}
}

// repack writes entries as a package, laying out the tar blocks itself so that an entry can
// claim a size its body does not materialize. Entries with zeros end the current zstd frame, add
// the zeros as a frame of RLE blocks, and continue in a new frame: concatenated frames decode as
// one stream.
func repack(t testing.TB, es []entry, trailer []byte) []byte {
	t.Helper()
	var out, plain bytes.Buffer
	flush := func() {
		enc, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		enc.Write(plain.Bytes())
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		plain.Reset()
	}
	for _, e := range es {
		hdr := e.hdr
		hdr.Size = int64(len(e.body)) + e.zeros
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		// A tar.Writer emits the header blocks at WriteHeader; the entry's data is ours to lay out.
		tw := tar.NewWriter(&plain)
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		plain.Write(e.body)
		if e.zeros > 0 {
			flush()
			out.Write(zeroFrames(e.zeros))
		}
		if pad := hdr.Size % 512; pad != 0 {
			plain.Write(make([]byte, 512-pad))
		}
	}
	plain.Write(make([]byte, 1024)) // end of archive
	plain.Write(trailer)
	flush()
	return out.Bytes()
}

// zeroFrames returns a zstd frame holding n zero bytes as RLE blocks of 128 KiB: 4 bytes each.
func zeroFrames(n int64) []byte {
	const block = 128 << 10
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38} // magic; no content size; window 128 KiB
	for n > 0 {
		size := min(n, block)
		n -= size
		h := uint32(size)<<3 | 1<<1 // RLE block
		if n == 0 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

func TestRepackRoundTrip(t *testing.T) {
	fx := newFixture(t)
	pkg, _ := fx.pack(t)
	again := repack(t, unpack(t, pkg), nil)
	if _, err := Open(context.Background(), writeTemp(t, again), OpenOptions{Keys: []minisign.PublicKey{fx.pub}}); err != nil {
		t.Fatalf("a package taken apart and put back together no longer opens: %v", err)
	}
}
