package record

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFileVersion(t *testing.T) {
	tests := []struct {
		in   string
		want FileVersion
		err  string // substring of the error; empty when in is valid
	}{
		{in: "6.5.7651.45", want: FileVersion{6, 5, 7651, 45}},
		{in: "0.0.0.0", want: FileVersion{}},
		{in: "4294967295.0.0.1", want: FileVersion{4294967295, 0, 0, 1}},
		{in: "", err: "want four parts a.b.c.d, got 1"},
		{in: "6.5.7651", err: "want four parts a.b.c.d, got 3"},
		{in: "6.5.7651.45.1", err: "want four parts a.b.c.d, got 5"},
		{in: "6..7651.45", err: "part 2 is empty"},
		{in: "6.5.7651.", err: "part 4 is empty"},
		{in: "06.5.7651.45", err: "part 1 has a leading zero"},
		{in: "6.5.7651.-1", err: "part 4 is not a decimal number"},
		{in: "6.5.7651.+1", err: "part 4 is not a decimal number"},
		{in: "6.5.76 51.45", err: "part 3 is not a decimal number"},
		{in: "6.5.7651.4x", err: "part 4 is not a decimal number"},
		{in: "6.5.7651.٤٥", err: "part 4 is not a decimal number"}, // Arabic-Indic digits
		{in: "4294967296.0.0.0", err: "part 1 is out of range"},
		{in: "v6.5.7651.45", err: "part 1 is not a decimal number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFileVersion(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseFileVersion(%q) = %v, %v; want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFileVersion(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestFileVersionCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"6.5.7651.45", "6.5.7651.45", 0},
		{"6.5.7638.1", "6.5.7651.45", -1},
		{"6.5.7651.45", "6.5.7638.1", 1},
		{"6.5.7651.9", "6.5.7651.45", -1}, // numeric, not lexical
		{"6.10.0.0", "6.9.9999.9999", 1},
		{"7.0.0.0", "6.4294967295.4294967295.4294967295", 1},
		{"0.0.0.0", "0.0.0.1", -1},
		{"1.0.0.0", "0.4294967295.0.0", 1},
		{"6.5.7226.0", "6.5.7638.0", -1},
	}
	for _, tt := range tests {
		a, b := MustParseFileVersion(tt.a), MustParseFileVersion(tt.b)
		if got := a.Compare(b); got != tt.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := b.Compare(a); got != -tt.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestFileVersionIsZero(t *testing.T) {
	if !(FileVersion{}).IsZero() || MustParseFileVersion("0.0.0.1").IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestMustParseFileVersionPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseFileVersion of a bad version did not panic")
		}
	}()
	MustParseFileVersion("6.5")
}

func TestFileVersionJSON(t *testing.T) {
	type row struct {
		V FileVersion `json:"v"`
	}
	b, err := json.Marshal(row{MustParseFileVersion("6.5.7651.45")})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"v":"6.5.7651.45"}` {
		t.Errorf("Marshal = %s", b)
	}
	var r row
	if err := json.Unmarshal(b, &r); err != nil || r.V != (FileVersion{6, 5, 7651, 45}) {
		t.Errorf("Unmarshal = %v, %v", r.V, err)
	}
	bad := []struct{ in, want string }{
		{`{"v":6.5}`, `must be a string like "6.5.7651.45"`},
		{`{"v":[6,5,7651,45]}`, `must be a string like "6.5.7651.45"`},
		{`{"v":"6.5.7651"}`, "want four parts"},
		{`{"v":"6.5.7651.99999999999"}`, "part 4 is out of range"},
	}
	for _, tt := range bad {
		var r row
		if err := json.Unmarshal([]byte(tt.in), &r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Unmarshal(%s) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
