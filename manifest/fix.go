package manifest

import (
	"fmt"
	"strings"
)

// VersionConstraint is a range of four-part file versions: every comparison in it must hold.
// semver cannot express it (it rejects four-part versions), and a crash names a build, not a
// product version.
type VersionConstraint []versionBound

type versionBound struct {
	op string // one of >=, >, <=, <, =
	v  FileVersion
}

// ParseVersionConstraint parses comma-separated comparisons of four-part versions, such as
// ">= 6.5.7638.1, < 6.5.7651.45" or "= 6.5.7638.1". The operators are >=, >, <=, < and =.
func ParseVersionConstraint(s string) (VersionConstraint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("is empty: give comparisons like \">= 6.5.7638.1, < 6.5.7651.45\"")
	}
	var c VersionConstraint
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		var op string
		for _, o := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(part, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, fmt.Errorf("%q does not start with one of >=, >, <=, <, =", part)
		}
		v, err := ParseFileVersion(strings.TrimSpace(part[len(op):]))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		c = append(c, versionBound{op, v})
	}
	return c, nil
}

// Check reports whether v lies in the range.
func (c VersionConstraint) Check(v FileVersion) bool {
	for _, b := range c {
		n := v.Compare(b.v)
		ok := false
		switch b.op {
		case ">=":
			ok = n >= 0
		case ">":
			ok = n > 0
		case "<=":
			ok = n <= 0
		case "<":
			ok = n < 0
		case "=":
			ok = n == 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// checkFixes checks the known problems a package declares.
func (m *Manifest) checkFixes(p *problems) {
	seen := make(map[string]int)
	for i, f := range m.Fixes {
		field := fmt.Sprintf("fixes[%d]", i)
		switch {
		case f.Component == "":
			p.add(field+".component", "is required: the component that crashes, e.g. tracking")
		case !componentPattern.MatchString(f.Component):
			p.add(field+".component", "%q is not a component name (letters, digits, '.', '_', '-')", f.Component)
		}
		if _, err := ParseVersionConstraint(f.Affected); err != nil {
			p.add(field+".affected", "%v", err)
		}
		checkText(p, field+".signature", f.Signature, 300)
		if f.Signature != "" && !strings.Contains(f.Signature, " in ") {
			p.add(field+".signature", "%q is not a crash signature like \"nil pointer dereference in relayfix/relay/trackplugin.recordsFor\"", f.Signature)
		}
		checkText(p, field+".summary", f.Summary, 200)
		key := f.Component + "\x00" + f.Signature
		if j, dup := seen[key]; dup {
			p.add(field, "repeats the component and signature of fixes[%d]", j)
			continue
		}
		seen[key] = i
	}
}
