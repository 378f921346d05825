// Package tsv escapes values for tab-separated lines, as the tracking log and the tracking event
// journal write them: a backslash becomes \\, a tab \t, a newline \n and a carriage return \r,
// so that no value can break a line or shift a column.
package tsv

import (
	"fmt"
	"strings"
)

// NeedsEscape reports whether c must be escaped.
func NeedsEscape(c byte) bool { return c == '\\' || c == '\t' || c == '\n' || c == '\r' }

// AppendEscaped appends s to b, escaped.
func AppendEscaped(b []byte, s string) []byte {
	// Most values need no escaping: copy those whole.
	i := 0
	for i < len(s) && !NeedsEscape(s[i]) {
		i++
	}
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// Unescape reverses AppendEscaped. It refuses a dangling backslash and unknown escapes.
func Unescape(s string) (string, error) {
	if !strings.ContainsRune(s, '\\') {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("dangling backslash in %q", s)
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}
