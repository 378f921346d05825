// Package humantime is the one way relayfix shows a time to a person: in the reader's zone,
// or in UTC when asked, converted with the offset that zone had at that very instant, and
// always naming the zone next to the clock time. A header that names one zone for a whole
// column is wrong for half the year (17-Oct-2005 12:00 UTC is 08:00 EDT in New York, and a
// January date there is EST), so the zone travels with each time. What scripts read (--json)
// stays RFC 3339 in UTC and does not come through here.
package humantime

import "time"

// In returns the zone times are shown in: UTC when utc is set, else local.
func In(utc bool, local *time.Location) *time.Location {
	if utc {
		return time.UTC
	}
	return local
}

// Date is the day of t in loc, as KB articles write it: 17-Oct-2005.
func Date(t time.Time, loc *time.Location) string { return t.In(loc).Format("02-Jan-2006") }

// Clock is the time of day of t in loc with the zone it had then: 08:00 EDT.
func Clock(t time.Time, loc *time.Location) string { return t.In(loc).Format("15:04 MST") }

// Stamp is the date and time of t in loc, to the second, with the zone: 2005-10-17 08:00:00 EDT.
func Stamp(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}
