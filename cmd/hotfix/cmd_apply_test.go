package main

import "testing"

func TestCrashMatches(t *testing.T) {
	tests := []struct {
		at, step string
		want     bool
	}{
		{"swapped", "swapped", true},
		{"swapped", "swapping:0", false},
		{"swapping", "swapping:0", true},
		{"swapping", "swapping:1", true}, // never reached: the first file already crashed
		{"swapping:1", "swapping:0", false},
		{"swapping:1", "swapping:1", true},
		{"prepared:0", "prepared:0", true},
		{"healthy", "restarted", false},
	}
	for _, tt := range tests {
		if got := crashMatches(tt.at, tt.step); got != tt.want {
			t.Errorf("crashMatches(%q, %q) = %v, want %v", tt.at, tt.step, got, tt.want)
		}
	}
}
