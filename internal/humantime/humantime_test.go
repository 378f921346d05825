package humantime

import (
	"testing"
	"time"
)

func TestEachTimeNamesItsOwnZone(t *testing.T) {
	october := time.Date(2005, 10, 17, 12, 0, 0, 0, time.UTC)
	february := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	tests := []struct {
		zone            string
		at              time.Time
		date, clock, st string
	}{
		{"America/New_York", october, "17-Oct-2005", "08:00 EDT", "2005-10-17 08:00:00 EDT"},
		{"America/New_York", february, "13-Feb-2006", "22:36 EST", "2006-02-13 22:36:00 EST"},
		{"Europe/London", october, "17-Oct-2005", "13:00 BST", "2005-10-17 13:00:00 BST"},
		{"Europe/London", february, "14-Feb-2006", "03:36 GMT", "2006-02-14 03:36:00 GMT"},
		{"UTC", october, "17-Oct-2005", "12:00 UTC", "2005-10-17 12:00:00 UTC"},
	}
	for _, tc := range tests {
		t.Run(tc.zone+"/"+tc.date, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			if got := Date(tc.at, loc); got != tc.date {
				t.Errorf("Date = %q, want %q", got, tc.date)
			}
			if got := Clock(tc.at, loc); got != tc.clock {
				t.Errorf("Clock = %q, want %q", got, tc.clock)
			}
			if got := Stamp(tc.at, loc); got != tc.st {
				t.Errorf("Stamp = %q, want %q", got, tc.st)
			}
			if got := Clock(tc.at, In(true, loc)); got[len(got)-3:] != "UTC" {
				t.Errorf("In(true) shows %q", got)
			}
		})
	}
}
