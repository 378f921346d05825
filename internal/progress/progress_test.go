package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMeterDrawsOnATerminalOnly(t *testing.T) {
	var b bytes.Buffer
	m := New(&b, "verifying x") // a buffer is not a terminal
	m.Update(1, 2)
	m.Done()
	if b.Len() != 0 {
		t.Fatalf("drew %q on a non-terminal", b.String())
	}

	clock := time.Unix(0, 0)
	m = &Meter{w: &b, label: "verifying x", on: true, now: func() time.Time { return clock }}
	m.Update(1<<20, 4<<20)
	clock = clock.Add(10 * time.Millisecond)
	m.Update(2<<20, 4<<20) // too soon: not drawn
	clock = clock.Add(200 * time.Millisecond)
	m.Update(4<<20, 4<<20)
	m.Done()
	out := b.String()
	for _, want := range []string{"verifying x: 1.0 MiB of 4.0 MiB (25%)", "4.0 MiB of 4.0 MiB (100%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "2.0 MiB") {
		t.Errorf("redrew within the interval: %q", out)
	}
	if !strings.HasSuffix(out, "\r") {
		t.Errorf("Done did not clear the line: %q", out)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 2048: "2.0 KiB", 27 << 20: "27.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
