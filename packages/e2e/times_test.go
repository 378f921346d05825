package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestTimesNameTheirZone runs the real hotfix list and history with TZ set to New York and to
// London: every time names its zone, converted with the offset that zone had at that instant
// (SP2's 17-Oct-2005 12:00 UTC is 08:00 EDT and 13:00 BST; KB910618's 14-Feb-2006 03:36 UTC is
// 22:36 EST the day before and 03:36 GMT), and --utc shows UTC whatever TZ says.
func TestTimesNameTheirZone(t *testing.T) {
	root := freshSP2(t)
	mustHotfix(t, root, "apply", e.kb)
	tests := []struct {
		tz      string
		args    []string
		want    []string
		pattern string // every start time in history
	}{
		{"America/New_York", []string{"list"}, []string{"relayd\t6.5.7638.1\t", "\t17-Oct-2005\t08:00 EDT\t", "\t13-Feb-2006\t22:36 EST\t"}, ""},
		{"Europe/London", []string{"list"}, []string{"\t17-Oct-2005\t13:00 BST\t", "\t14-Feb-2006\t03:36 GMT\t"}, ""},
		{"America/New_York", []string{"list", "--utc"}, []string{"\t17-Oct-2005\t12:00 UTC\t", "\t14-Feb-2006\t03:36 UTC\t"}, ""},
		{"Europe/London", []string{"list", "--utc"}, []string{"\t17-Oct-2005\t12:00 UTC\t", "\t14-Feb-2006\t03:36 UTC\t"}, ""},
		{"America/New_York", []string{"history"}, []string{"\tStart\t"}, `\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T\t`},
		{"Europe/London", []string{"history"}, []string{"\tStart\t"}, `\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (GMT|BST)\t`},
		{"America/New_York", []string{"history", "--utc"}, []string{"\tStart\t"}, `\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\t`},
	}
	for _, tc := range tests {
		t.Run(tc.tz+"/"+strings.Join(tc.args, " "), func(t *testing.T) {
			r := hotfix(t, root, []string{"TZ=" + tc.tz}, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("no %q in\n%s", w, r.stdout)
				}
			}
			if tc.pattern != "" {
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")[1:]
				re := regexp.MustCompile(tc.pattern)
				for _, l := range lines {
					if !re.MatchString(l) {
						t.Errorf("history line %q does not match %s", l, tc.pattern)
					}
				}
				if len(lines) != 2 {
					t.Errorf("history has %d transactions, want 2", len(lines))
				}
			}
		})
	}
}
