package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"aead.dev/minisign"
	"github.com/klauspost/compress/zstd"
)

// benchPayload writes a 64 MiB payload that reads as a stamped binary: the stamped test
// executable, then bytes about as compressible as machine code (a skewed byte distribution).
func benchPayload(b *testing.B) string {
	b.Helper()
	exe, err := os.ReadFile(stampedBin)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64<<20)
	n := copy(data, exe)
	r := rand.New(rand.NewPCG(1, 2))
	for i := n; i < len(data); i++ {
		if x := r.IntN(8); x < 4 {
			data[i] = byte(x)
		} else {
			data[i] = byte(r.Uint32())
		}
	}
	p := filepath.Join(b.TempDir(), "payload")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkOpenVerify measures verify-only Open of a package with a 64 MiB payload, in bytes of
// payload per second; BenchmarkSHA256 is the floor it is measured against.
func BenchmarkOpenVerify(b *testing.B) {
	fx := newFixture(b)
	fx.tmpl.Files = fx.tmpl.Files[:1]
	fx.payload = map[string]string{"bin/msgtrack": benchPayload(b)}
	pkg, _ := fx.pack(b)
	path := writeTemp(b, pkg)
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Open(context.Background(), path, OpenOptions{Keys: []minisign.PublicKey{fx.pub}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSHA256(b *testing.B) {
	path := benchPayload(b)
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		io.CopyBuffer(h, f, make([]byte, 1<<20))
		f.Close()
	}
}

// BenchmarkDecompress compares the codecs a package could use on the same payload.
func BenchmarkDecompress(b *testing.B) {
	data, err := os.ReadFile(benchPayload(b))
	if err != nil {
		b.Fatal(err)
	}
	var zs, gz bytes.Buffer
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(data)
	ze.Close()
	ge := gzip.NewWriter(&gz)
	ge.Write(data)
	ge.Close()
	b.Run("zstd", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			d, _ := zstd.NewReader(bytes.NewReader(zs.Bytes()), zstd.WithDecoderConcurrency(2))
			io.Copy(io.Discard, d)
			d.Close()
		}
		b.ReportMetric(float64(zs.Len())/float64(len(data)), "compressed/raw")
	})
	b.Run("gzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			d, _ := gzip.NewReader(bytes.NewReader(gz.Bytes()))
			io.Copy(io.Discard, d)
		}
		b.ReportMetric(float64(gz.Len())/float64(len(data)), "compressed/raw")
	})
}
