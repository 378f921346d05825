package archive

import (
	"bytes"
	"context"
	"os"
	"testing"

	"aead.dev/minisign"
)

// Pack and Open report progress up to exactly the whole: payload bytes for Pack, package bytes
// for Open, never going backwards.
func TestProgress(t *testing.T) {
	fx := newFixture(t)
	var packed []int64
	var packTotal int64
	var buf bytes.Buffer
	m, err := Pack(context.Background(), &buf, fx.tmpl, fx.payload, fx.priv, PackOptions{
		Date:     fileDate,
		Progress: func(done, total int64) { packed = append(packed, done); packTotal = total },
	})
	if err != nil {
		t.Fatal(err)
	}
	var payload int64
	for _, f := range m.Files {
		payload += f.Size
	}
	checkProgress(t, "pack", packed, packTotal, payload)

	path := writeTemp(t, buf.Bytes())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var read []int64
	var readTotal int64
	_, err = Open(context.Background(), path, OpenOptions{
		Keys:     []minisign.PublicKey{fx.pub},
		Progress: func(done, total int64) { read = append(read, done); readTotal = total },
	})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, "open", read, readTotal, fi.Size())
}

func checkProgress(t *testing.T, what string, seen []int64, total, want int64) {
	t.Helper()
	if len(seen) == 0 {
		t.Fatalf("%s: no progress reported", what)
	}
	if total != want {
		t.Errorf("%s: total %d, want %d", what, total, want)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("%s: progress went backwards: %d after %d", what, seen[i], seen[i-1])
		}
	}
	if last := seen[len(seen)-1]; last != want {
		t.Errorf("%s: last progress %d, want %d", what, last, want)
	}
}
