package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// FileVersion is a four-part file version, major.minor.build.revision, as Windows file version
// resources and KB file tables write them (6.5.7651.45). Parts compare numerically, one by one.
type FileVersion [4]uint32

// ParseFileVersion parses "a.b.c.d" where each part is a decimal number that fits in 32 bits, with
// no sign, no spaces and no leading zeros (except "0" itself), so that each version has exactly one
// spelling. On error it returns the zero version.
func ParseFileVersion(s string) (FileVersion, error) {
	var v FileVersion
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return FileVersion{}, fmt.Errorf("file version %q: want four parts a.b.c.d, got %d", s, len(parts))
	}
	for i, p := range parts {
		if p == "" {
			return FileVersion{}, fmt.Errorf("file version %q: part %d is empty", s, i+1)
		}
		if len(p) > 1 && p[0] == '0' {
			return FileVersion{}, fmt.Errorf("file version %q: part %d has a leading zero", s, i+1)
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return FileVersion{}, fmt.Errorf("file version %q: part %d is not a decimal number", s, i+1)
			}
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return FileVersion{}, fmt.Errorf("file version %q: part %d is out of range", s, i+1)
		}
		v[i] = uint32(n)
	}
	return v, nil
}

// MustParseFileVersion is ParseFileVersion for constants; it panics on a malformed version.
func MustParseFileVersion(s string) FileVersion {
	v, err := ParseFileVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v FileVersion) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", v[0], v[1], v[2], v[3])
}

// IsZero reports whether v is 0.0.0.0, the version of an unstamped build.
func (v FileVersion) IsZero() bool { return v == FileVersion{} }

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer than w.
func (v FileVersion) Compare(w FileVersion) int {
	for i := range v {
		switch {
		case v[i] < w[i]:
			return -1
		case v[i] > w[i]:
			return 1
		}
	}
	return 0
}

// MarshalJSON writes the version as its dotted string.
func (v FileVersion) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// UnmarshalJSON reads the dotted string form.
func (v *FileVersion) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("file version must be a string like \"6.5.7651.45\"")
	}
	p, err := ParseFileVersion(s)
	if err != nil {
		return err
	}
	*v = p
	return nil
}
