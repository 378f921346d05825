package manifest

import (
	"errors"
	"strings"
	"testing"
)

// withFixes returns the KB910618 test manifest declaring the fixes given as JSON.
func withFixes(t *testing.T, fixes string) []byte {
	t.Helper()
	kb := string(readTestdata(t, "kb910618.json"))
	old := "  \"supersedes\": ["
	if strings.Count(kb, old) != 1 {
		t.Fatalf("test manifest does not contain %q once", old)
	}
	return []byte(strings.Replace(kb, old, "  \"fixes\": "+fixes+",\n"+old, 1))
}

const goodFix = `{"component": "tracking", "affected": ">= 6.5.7638.1, < 6.5.7651.45",
  "signature": "nil pointer dereference in relayfix/relay/trackplugin.recordsFor",
  "summary": "message tracking stops under heavy load"}`

func TestParseFixes(t *testing.T) {
	m, err := Parse(withFixes(t, "["+goodFix+"]"))
	if err != nil {
		t.Fatal(err)
	}
	want := Fix{Component: "tracking", Affected: ">= 6.5.7638.1, < 6.5.7651.45",
		Signature: "nil pointer dereference in relayfix/relay/trackplugin.recordsFor", Summary: "message tracking stops under heavy load"}
	if len(m.Fixes) != 1 || m.Fixes[0] != want {
		t.Fatalf("fixes = %+v, want [%+v]", m.Fixes, want)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil || len(back.Fixes) != 1 || back.Fixes[0] != want {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestParseMalformedFixes(t *testing.T) {
	tests := []struct {
		name, fixes, field, want string
	}{
		{"not an array", `{}`, "fixes", "fixes: must be an array, got an object"},
		{"element not an object", `["crash"]`, "fixes[0]", `fixes[0]: must be an object, got the string "crash"`},
		{"unknown field", `[{"component": "tracking", "colour": "red"}]`, "fixes[0].colour", "fixes[0].colour: is not a known field"},
		{"null signature", `[{"signature": null}]`, "fixes[0].signature", "fixes[0].signature: must not be null"},
		{"component missing", strings.Replace("["+goodFix+"]", `"component": "tracking",`, ``, 1), "fixes[0].component", "fixes[0].component: is required"},
		{"component bad", strings.Replace("["+goodFix+"]", `"tracking"`, `"track ing"`, 1), "fixes[0].component", `fixes[0].component: "track ing" is not a component name`},
		{"affected empty", strings.Replace("["+goodFix+"]", `">= 6.5.7638.1, < 6.5.7651.45"`, `""`, 1), "fixes[0].affected", "fixes[0].affected: is empty"},
		{"affected three parts", strings.Replace("["+goodFix+"]", `>= 6.5.7638.1,`, `>= 6.5.7638,`, 1), "fixes[0].affected", `fixes[0].affected: ">= 6.5.7638":`},
		{"affected no operator", strings.Replace("["+goodFix+"]", `>= 6.5.7638.1,`, `6.5.7638.1,`, 1), "fixes[0].affected", `does not start with one of`},
		{"signature without frame", strings.Replace("["+goodFix+"]", ` in relayfix/relay/trackplugin.recordsFor`, ``, 1), "fixes[0].signature", "is not a crash signature"},
		{"summary missing", strings.Replace("["+goodFix+"]", `"summary": "message tracking stops under heavy load"`, `"summary": ""`, 1), "fixes[0].summary", "fixes[0].summary: is required"},
		{"summary two lines", strings.Replace("["+goodFix+"]", `stops under`, `stops\nunder`, 1), "fixes[0].summary", "fixes[0].summary: must be one line"},
		{"duplicate", "[" + goodFix + "," + goodFix + "]", "fixes[1]", "fixes[1]: repeats the component and signature of fixes[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(withFixes(t, tt.fixes))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var fe *FieldError
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &fe) && fe.Field == tt.field {
					found = true
				}
			}
			if !found {
				t.Errorf("no FieldError for %s in %v", tt.field, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestVersionConstraint(t *testing.T) {
	c, err := ParseVersionConstraint(">= 6.5.7638.1, < 6.5.7651.45")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{
		"6.5.7226.0": false, "6.5.7638.0": false, "6.5.7638.1": true, "6.5.7651.44": true, "6.5.7651.45": false, "7.0.0.0": false,
	} {
		if got := c.Check(MustParseFileVersion(v)); got != want {
			t.Errorf("Check(%s) = %v, want %v", v, got, want)
		}
	}
	if c, _ := ParseVersionConstraint("= 6.5.7638.1"); !c.Check(MustParseFileVersion("6.5.7638.1")) || c.Check(MustParseFileVersion("6.5.7638.2")) {
		t.Error("= does not match exactly one build")
	}
}
