package queue

import (
	"math"
	"time"
)

// nextDelay returns how long to wait before attempt+1, after attempt failed attempts: base
// doubled per attempt, capped at max, then spread by ±25% with rnd (in [0,1)) so that messages
// deferred together do not all come back at the same instant.
func nextDelay(attempt int, rnd float64, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(base) * math.Pow(2, float64(attempt-1))
	if d > float64(max) || math.IsInf(d, 0) {
		d = float64(max)
	}
	if rnd < 0 {
		rnd = 0
	}
	if rnd >= 1 {
		rnd = math.Nextafter(1, 0)
	}
	return time.Duration(d * (0.75 + 0.5*rnd))
}
