package verifier

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relayfix/internal/stamp"
	"relayfix/manifest"
)

func what(v string) string { return stamp.Marker + v + stamp.Terminator }

func TestVersionScanner(t *testing.T) {
	filler := strings.Repeat("\x00ELF-ish bytes ", 20000) // ~300 KB, so chunking matters
	tests := []struct {
		name    string
		data    string
		want    string
		wantErr string
	}{
		{"unstamped", filler, "0.0.0.0", ""},
		{"stamped in the middle", filler + what("6.5.7651.45") + filler, "6.5.7651.45", ""},
		{"stamped at the start", what("6.5.7638.1") + filler, "6.5.7638.1", ""},
		{"stamped at the very end", filler + what("6.5.7638.1"), "6.5.7638.1", ""},
		{"same stamp twice", what("1.2.3.4") + filler + what("1.2.3.4"), "1.2.3.4", ""},
		{"two different stamps", what("1.2.3.4") + filler + what("1.2.3.5"), "", "stamped with 2 different versions: 1.2.3.4, 1.2.3.5"},
		// The marker constant sits in every binary that links the stamp package, followed by
		// whatever string data the linker put next: that is not a stamp.
		{"bare marker", filler + stamp.Marker + "0.0.0.0" + filler, "0.0.0.0", ""},
		{"marker then junk", stamp.Marker + "CutPrefix;" + filler + what("6.5.7651.45"), "6.5.7651.45", ""},
		{"three parts", what("6.5.7651") + filler, "0.0.0.0", ""},
		{"part out of range", what("6.5.7651.4294967296") + filler, "0.0.0.0", ""},
		{"largest version", filler + what("4294967295.4294967295.4294967295.4294967295"), "4294967295.4294967295.4294967295.4294967295", ""},
		{"marker cut short at the end", filler + stamp.Marker + "6.5", "0.0.0.0", ""},
	}
	// Every test is fed whole, byte by byte around the stamps, and in random chunk sizes:
	// the result must not depend on where the chunks split.
	chunkings := map[string]func(n int) int{
		"whole":  func(n int) int { return n },
		"1":      func(int) int { return 1 },
		"7":      func(int) int { return 7 },
		"window": func(int) int { return window },
		"random": func(int) int { return 1 + rand.IntN(3*window) },
		"32k":    func(int) int { return 32 << 10 },
	}
	for _, tc := range tests {
		for cname, chunk := range chunkings {
			t.Run(tc.name+"/"+cname, func(t *testing.T) {
				var s versionScanner
				data := []byte(tc.data)
				for len(data) > 0 {
					n := min(chunk(len(data)), len(data))
					if cname == "1" && len(data) > 4096 && !bytes.Contains(data[:4096], []byte("@")) {
						n = 4096 // byte by byte only where it matters, to keep the test fast
					}
					s.Write(data[:n])
					data = data[n:]
				}
				v, err := s.Version()
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("got %v, %v; want error %q", v, err, tc.wantErr)
					}
					return
				}
				if err != nil || v.String() != tc.want {
					t.Fatalf("got %v, %v; want %s", v, err, tc.want)
				}
			})
		}
	}
}

func TestReadFileVersion(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bin")
	data := append(bytes.Repeat([]byte{0x90}, 3<<20), what(stamp.TrackFixedVersion)...)
	data = append(data, bytes.Repeat([]byte{0xcc}, 1<<20)...)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := ReadFileVersion(p)
	if err != nil || v != manifest.MustParseFileVersion(stamp.TrackFixedVersion) {
		t.Fatalf("ReadFileVersion = %v, %v", v, err)
	}
	if _, err := ReadFileVersion(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

// BenchmarkReadFileVersion measures the scan on an 18 MB file, the size of a relayfix binary.
func BenchmarkReadFileVersion(b *testing.B) {
	p := filepath.Join(b.TempDir(), "bin")
	data := make([]byte, 18<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	copy(data[len(data)/2:], what("6.5.7651.45"))
	if err := os.WriteFile(p, data, 0o755); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ReadFileVersion(p); err != nil {
			b.Fatal(err)
		}
	}
}
