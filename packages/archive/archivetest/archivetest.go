// Package archivetest takes package files apart and puts them back together, altered, for the
// tests of everything that must refuse a tampered or forged package (the archive itself, hotfix
// verify and apply). It lays out tar blocks and zstd frames by hand, so that an entry can claim a
// size its body does not have, or a gigabyte of zeros that costs a few kilobytes; nothing outside
// tests imports it, so the tools to forge a package never ship in hotfix.
package archivetest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/klauspost/compress/zstd"

	"relayfix/manifest"
	"relayfix/verifier"
)

// Entry is one archive entry of a package taken apart. A package's first two entries are its
// manifest and the manifest's signature.
type Entry struct {
	Header tar.Header
	Body   []byte
	// Zeros, when set, is a run of zero bytes appended to the body, compressed as zstd RLE
	// blocks so that a gigabyte costs a few kilobytes to store and nothing to build.
	Zeros int64
}

// Unpack reads a package into its entries.
func Unpack(t testing.TB, pkg []byte) []Entry {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(pkg))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	var es []Entry
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
		es = append(es, Entry{Header: *hdr, Body: b})
	}
}

// UnpackFile reads the package file at path into its entries.
func UnpackFile(t testing.TB, path string) []Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Unpack(t, b)
}

// Repack writes entries as a package, followed by trailer after the end-of-archive blocks. An
// entry's header claims the size of its body and zeros whatever it said before (a non-regular
// entry claims none). Entries with zeros end the current zstd frame, add the zeros as a frame of
// RLE blocks, and continue in a new frame: concatenated frames decode as one stream.
func Repack(t testing.TB, es []Entry, trailer []byte) []byte {
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
		size := writeHeader(t, &plain, e)
		plain.Write(e.Body)
		if e.Zeros > 0 {
			flush()
			out.Write(ZeroFrames(e.Zeros))
		}
		pad(&plain, size)
	}
	plain.Write(make([]byte, 1024)) // end of archive
	plain.Write(trailer)
	flush()
	return out.Bytes()
}

// TarBytes lays out entries (without zeros) as tar blocks without the end marker, so that
// streams concatenate.
func TarBytes(t testing.TB, es []Entry) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		size := writeHeader(t, &b, e)
		b.Write(e.Body)
		pad(&b, size)
	}
	return b.Bytes()
}

// writeHeader writes e's header blocks, claiming the size of its body and zeros (none for an
// entry that is not a regular file), and returns that size. A tar.Writer emits the header at
// WriteHeader; the entry's data is the caller's to lay out.
func writeHeader(t testing.TB, b *bytes.Buffer, e Entry) int64 {
	t.Helper()
	hdr := e.Header
	hdr.Size = 0
	if hdr.Typeflag == tar.TypeReg {
		hdr.Size = int64(len(e.Body)) + e.Zeros
	}
	if err := tar.NewWriter(b).WriteHeader(&hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Size
}

// pad fills the last tar block of an entry of size bytes.
func pad(b *bytes.Buffer, size int64) {
	if r := size % 512; r != 0 {
		b.Write(make([]byte, 512-r))
	}
}

// RepackFile is Repack into a new file in a temporary directory of t; it returns the file's path.
func RepackFile(t testing.TB, es []Entry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tampered.hfx")
	if err := os.WriteFile(p, Repack(t, es, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ZeroFrames returns a zstd frame holding n zero bytes as RLE blocks of 128 KiB: 4 bytes each.
func ZeroFrames(n int64) []byte {
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

// Resign replaces the manifest and signature entries with m, signed by key as hotfix pack signs.
func Resign(t testing.TB, es []Entry, m *manifest.Manifest, key minisign.PrivateKey) []Entry {
	t.Helper()
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	es[0].Body, es[1].Body = mb, verifier.Sign(key, m, mb, time.Now())
	return es
}
