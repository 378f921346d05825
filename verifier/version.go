package verifier

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"relayfix/internal/stamp"
	"relayfix/manifest"
)

// maxVersionLen is the longest four-part version text: four 32-bit numbers and three dots.
const maxVersionLen = 4*10 + 3

// window is how many bytes a stamp can span: the marker, the version and the terminator. A
// scanner keeps this many bytes of one chunk to find a stamp that straddles two chunks.
const window = len(stamp.Marker) + maxVersionLen + len(stamp.Terminator)

// ReadFileVersion reads the file version stamped into the file at path, statically. A file with
// no stamp has version 0.0.0.0; a file stamped with two different versions is an error, because
// no single answer could be trusted.
func ReadFileVersion(path string) (manifest.FileVersion, error) {
	f, err := os.Open(path)
	if err != nil {
		return manifest.FileVersion{}, fmt.Errorf("read file version: %w", err)
	}
	defer f.Close()
	var s versionScanner
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(&s, f, buf); err != nil {
		return manifest.FileVersion{}, fmt.Errorf("read file version of %s: %w", path, err)
	}
	v, err := s.Version()
	if err != nil {
		return manifest.FileVersion{}, fmt.Errorf("read file version of %s: %w", path, err)
	}
	return v, nil
}

// versionScanner finds stamped what-strings in a stream written to it in chunks of any size. It
// searches each chunk in place (no copy of the stream) and carries only the last window-1 bytes
// over to the next chunk, so the cost is one bytes.Index pass over the data.
type versionScanner struct {
	carry    []byte // unsearched tail of the stream so far, shorter than 2*window
	found    []manifest.FileVersion
	boundary []byte // scratch for the carry joined with the head of the next chunk
}

func (s *versionScanner) Write(p []byte) (int, error) {
	n := len(p)
	if len(s.carry)+len(p) < 2*window {
		// Small writes accumulate until there is enough to decide on.
		s.carry = append(s.carry, p...)
		if len(s.carry) >= window {
			keep := window - 1
			s.scan(s.carry, len(s.carry)-keep)
			s.carry = append(s.carry[:0], s.carry[len(s.carry)-keep:]...)
		}
		return n, nil
	}
	// A stamp that starts in the carry ends within the first window-1 bytes of p.
	if len(s.carry) > 0 {
		head := min(len(p), window-1)
		s.boundary = append(append(s.boundary[:0], s.carry...), p[:head]...)
		s.scan(s.boundary, len(s.carry))
	}
	keep := min(len(p), window-1)
	s.scan(p, len(p)-keep)
	s.carry = append(s.carry[:0], p[len(p)-keep:]...)
	return n, nil
}

// scan records every stamp in b that starts before limit.
func (s *versionScanner) scan(b []byte, limit int) {
	marker := []byte(stamp.Marker)
	for off := 0; off < limit; {
		i := bytes.Index(b[off:], marker)
		if i < 0 || off+i >= limit {
			return
		}
		start := off + i
		if v, ok := parseStamp(b[start+len(marker):]); ok && !slices.Contains(s.found, v) {
			s.found = append(s.found, v)
		}
		off = start + 1
	}
}

// parseStamp parses "a.b.c.d;" at the start of b. Anything else (the marker constant itself sits
// in every binary that links the stamp package, followed by unrelated bytes) is not a stamp.
func parseStamp(b []byte) (manifest.FileVersion, bool) {
	end := bytes.Index(b[:min(len(b), maxVersionLen+len(stamp.Terminator))], []byte(stamp.Terminator))
	if end < 0 {
		return manifest.FileVersion{}, false
	}
	v, err := manifest.ParseFileVersion(string(b[:end]))
	return v, err == nil
}

// Version finishes the scan and returns the one version found, 0.0.0.0 if there was none.
func (s *versionScanner) Version() (manifest.FileVersion, error) {
	s.scan(s.carry, len(s.carry))
	s.carry = s.carry[:0]
	switch len(s.found) {
	case 0:
		return manifest.FileVersion{}, nil
	case 1:
		return s.found[0], nil
	}
	vs := make([]string, len(s.found))
	for i, v := range s.found {
		vs[i] = v.String()
	}
	return manifest.FileVersion{}, fmt.Errorf("file is stamped with %d different versions: %s", len(vs), strings.Join(vs, ", "))
}
