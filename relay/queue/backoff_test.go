package queue

import (
	"testing"
	"time"
)

func TestNextDelay(t *testing.T) {
	base, max := time.Minute, time.Hour
	tests := []struct {
		attempt  int
		rnd      float64
		min, top time.Duration
	}{
		{1, 0, 45 * time.Second, 45 * time.Second},              // base, lowest jitter
		{1, 0.5, time.Minute, time.Minute},                      // base, no jitter
		{2, 0.5, 2 * time.Minute, 2 * time.Minute},              // doubles
		{4, 0.5, 8 * time.Minute, 8 * time.Minute},              // and again
		{0, 0.5, time.Minute, time.Minute},                      // attempt 0 is treated as the first
		{7, 0.5, time.Hour, time.Hour},                          // 64 min capped at max
		{100, 0.999999, 74 * time.Minute, 75 * time.Minute},     // capped, highest jitter just under +25%
		{3, 2, 4*time.Minute + 59*time.Second, 5 * time.Minute}, // rnd out of range is clamped
		{3, -1, 3 * time.Minute, 3 * time.Minute},
	}
	for _, tt := range tests {
		got := nextDelay(tt.attempt, tt.rnd, base, max)
		if got < tt.min || got > tt.top {
			t.Errorf("nextDelay(%d, %v) = %v, want in [%v, %v]", tt.attempt, tt.rnd, got, tt.min, tt.top)
		}
	}
}

func TestNextDelayJitterSpreads(t *testing.T) {
	// Messages deferred together must not all come back together.
	seen := map[time.Duration]bool{}
	for i := range 10 {
		seen[nextDelay(3, float64(i)/10, time.Second, time.Hour)] = true
	}
	if len(seen) != 10 {
		t.Fatalf("10 different rnd values gave %d different delays", len(seen))
	}
	for d := range seen {
		if d < 3*time.Second || d > 5*time.Second {
			t.Errorf("delay %v outside 4s±25%%", d)
		}
	}
}
