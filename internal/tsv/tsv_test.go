package tsv

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "tab\there", "line\nbreak\r\n", `back\slash`, "\\t literal", "ünïcode\t"} {
		enc := string(AppendEscaped(nil, s))
		if strings.ContainsAny(enc, "\t\n\r") {
			t.Errorf("AppendEscaped(%q) = %q still holds a separator", s, enc)
		}
		dec, err := Unescape(enc)
		if err != nil || dec != s {
			t.Errorf("Unescape(AppendEscaped(%q)) = %q, %v", s, dec, err)
		}
	}
}

func TestUnescapeRefuses(t *testing.T) {
	for _, s := range []string{`ends in \`, `bad \x escape`} {
		if _, err := Unescape(s); err == nil {
			t.Errorf("Unescape(%q) accepted it", s)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("a\tb\\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := Unescape(string(AppendEscaped(nil, s)))
		if err != nil || dec != s {
			t.Fatalf("round trip of %q gave %q, %v", s, dec, err)
		}
	})
}
