package stamp

import (
	"os"
	"regexp"
	"testing"
)

// The Makefile stamps the shipped builds; it must stamp the versions this package names.
func TestMakefileVersionsMatch(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ variable, want string }{
		{"RELAYD_VERSION", RelaydVersion},
		{"TRACK_PREFIX_VERSION", TrackPrefixVersion},
		{"TRACK_FIXED_VERSION", TrackFixedVersion},
		{"SP3_RELAYD_VERSION", RelaydSP3Version},
		{"SP3_TRACK_VERSION", TrackSP3Version},
	} {
		m := regexp.MustCompile(`(?m)^` + tc.variable + `\s*=\s*(\S+)\s*$`).FindSubmatch(mk)
		if m == nil {
			t.Errorf("Makefile does not set %s", tc.variable)
			continue
		}
		if got := string(m[1]); got != tc.want {
			t.Errorf("Makefile %s = %s, internal/stamp says %s", tc.variable, got, tc.want)
		}
	}
}

func TestVersionUnstamped(t *testing.T) {
	if got := Version(); got != "0.0.0.0" {
		t.Errorf("Version() of an unstamped test binary = %q, want 0.0.0.0", got)
	}
	if got, want := LDFlag("6.5.7651.45"), "-X relayfix/internal/stamp.what=@(#)relayfix-fileversion:6.5.7651.45;"; got != want {
		t.Errorf("LDFlag = %q, want %q", got, want)
	}
}
