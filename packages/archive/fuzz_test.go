package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/klauspost/compress/zstd"

	"relayfix/internal/stamp"
	"relayfix/manifest"
	"relayfix/packages/archive/archivetest"
	"relayfix/verifier"
)

// fuzzKey is derived from a fixed seed, so that every fuzzing process (the fuzzer runs several)
// agrees on which signatures are valid.
func fuzzKey(t testing.TB) (minisign.PublicKey, minisign.PrivateKey) {
	pub, priv, err := minisign.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{0x5e}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// tinyBinary is a few hundred bytes that read as a stamped executable for this platform: an ELF
// header and a version stamp. Fuzz inputs stay small and fast.
func tinyBinary(version string) []byte {
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB)
	m := elf.EM_X86_64
	if runtime.GOARCH == "arm64" {
		m = elf.EM_AARCH64
	}
	binary.LittleEndian.PutUint16(h[18:], uint16(m))
	h = append(h, stamp.Marker+version+stamp.Terminator...)
	return append(h, bytes.Repeat([]byte("relayfix"), 16)...)
}

// fuzzSeed writes a small valid package signed with the fuzz key and returns its entries.
func fuzzSeed(t testing.TB) []archivetest.Entry {
	_, priv := fuzzKey(t)
	bins := map[string][]byte{"bin/msgtrack": tinyBinary("6.5.7651.45"), "bin/relayd": tinyBinary("6.5.7638.1")}
	m := &manifest.Manifest{
		Schema: manifest.SchemaVersion, ID: "KB910618", Title: "Fuzz seed", Kind: manifest.KindHotfix,
		Released: "2006-02-14", Product: manifest.Product{Name: "relayfix"},
		Requires: manifest.Requires{ServicePack: 2},
	}
	var es []archivetest.Entry
	for _, p := range []string{"bin/msgtrack", "bin/relayd"} {
		b := bins[p]
		sum := sha256.Sum256(b)
		d := verifier.NewDigester()
		d.Write(b)
		dg := d.Digest(fileDate)
		m.Files = append(m.Files, manifest.File{
			Name: filepath.Base(p), Path: p, Version: dg.Version, Size: int64(len(b)),
			Date: fileDate, Platform: dg.Platform, SHA256: hex.EncodeToString(sum[:]),
		})
		es = append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: PayloadDir + p, Mode: 0o755, ModTime: fileDate, Format: tar.FormatPAX}, Body: b})
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	head := []archivetest.Entry{
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: EntryManifest, Mode: 0o644}, Body: mb},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: EntrySignature, Mode: 0o644}, Body: verifier.Sign(priv, m, mb, fileDate)},
	}
	return append(head, es...)
}

func fuzzLimits() Limits {
	return Limits{MaxPackage: 1 << 20, MaxManifest: 64 << 10, MaxFile: 64 << 10, MaxTotal: 1 << 20, MaxEntries: 64}
}

// checkOpenResult holds the properties every Open must keep, whatever it was given: nothing
// written outside the staging directory, no temporary files left, nothing staged after a
// failure, and after a success every staged file matching its manifest row.
func checkOpenResult(t *testing.T, dir, pkg, stage string, o *Opened, err error) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, werr error) error {
		if werr == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		if f != pkg && !strings.HasPrefix(f, stage+string(filepath.Separator)) {
			t.Fatalf("Open wrote %s, outside the staging dir %s", f, stage)
		}
		if strings.Contains(filepath.Base(f), ".tmp-") {
			t.Fatalf("Open left a temporary file %s (err %v)", f, err)
		}
	}
	if err != nil {
		if len(files) > 1 {
			t.Fatalf("Open failed (%v) but left %v", err, files)
		}
		return
	}
	if len(o.Staged) != len(o.Manifest.Files) || len(files) != len(o.Manifest.Files)+1 {
		t.Fatalf("staged %v for %d files; files on disk %v", o.Staged, len(o.Manifest.Files), files)
	}
	for _, f := range o.Manifest.Files {
		rep, err := verifier.CheckFile(o.Staged[f.Path], f)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Fatalf("Open succeeded but a staged file does not match: %v", err)
		}
	}
}

func openFuzzed(t *testing.T, pkgBytes []byte) {
	pub, _ := fuzzKey(t)
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.hfx")
	if err := os.WriteFile(pkg, pkgBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	// Stage two levels down, so that an escape by ".." would land in dir and be seen.
	stage := filepath.Join(dir, "a", "b", "stage")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := Open(ctx, pkg, OpenOptions{Keys: []minisign.PublicKey{pub}, StageDir: stage, Limits: fuzzLimits(), Now: fileDate})
	checkOpenResult(t, dir, pkg, stage, o, err)
}

// FuzzOpen feeds Open whole package files.
func FuzzOpen(f *testing.F) {
	es := fuzzSeed(f)
	valid := archivetest.Repack(f, es, nil)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(archivetest.Repack(f, es[:3], nil))
	f.Add(archivetest.Repack(f, append(append([]archivetest.Entry{}, es...), archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "payload/bin/x", Linkname: "/etc/passwd"}}), nil))
	f.Add(archivetest.Repack(f, append(append([]archivetest.Entry{}, es...), archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "payload/../x"}, Body: []byte("x")}), nil))
	f.Add([]byte("not a package"))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		openFuzzed(t, data)
	})
}

// FuzzOpenPayload keeps a validly signed manifest at the head of the archive and lets the fuzzer
// write the rest of the tar stream, so that the payload checks run on inputs a signature check
// would otherwise stop first.
func FuzzOpenPayload(f *testing.F) {
	es := fuzzSeed(f)
	head := archivetest.TarBytes(f, es[:2])
	f.Add(archivetest.TarBytes(f, es[2:]))
	f.Add(archivetest.TarBytes(f, es[2:3]))
	f.Add(archivetest.TarBytes(f, []archivetest.Entry{es[3], es[2]}))
	f.Add(archivetest.TarBytes(f, []archivetest.Entry{{Header: tar.Header{Typeflag: tar.TypeDir, Name: "payload/bin/"}}, es[2], es[3]}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, tail []byte) {
		var pkg bytes.Buffer
		enc, err := zstd.NewWriter(&pkg, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		enc.Write(head)
		enc.Write(tail)
		enc.Close()
		openFuzzed(t, pkg.Bytes())
	})
}

// TestFuzzSeedOpens makes sure the fuzz targets start from a package that opens, so that the
// fuzzer explores past the signature check.
func TestFuzzSeedOpens(t *testing.T) {
	pub, _ := fuzzKey(t)
	stage := filepath.Join(t.TempDir(), "stage")
	o, err := Open(context.Background(), writeTemp(t, archivetest.Repack(t, fuzzSeed(t), nil)), OpenOptions{Keys: []minisign.PublicKey{pub}, StageDir: stage, Limits: fuzzLimits(), Now: fileDate})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Staged) != 2 {
		t.Fatalf("staged %v", o.Staged)
	}
}
