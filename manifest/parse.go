package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxSize is the largest manifest Parse reads. A real one is a few kilobytes; the cap keeps a
// hostile package from making the updater allocate without bound before anything is verified.
const MaxSize = 1 << 20

// Parse reads a manifest and validates it. The JSON must be exactly one object whose keys match
// the field names exactly, each once, with no unknown fields, no nulls and nothing after it.
// Every error names the field at fault by its JSON path, as in "files[1].sha256"; the errors are
// *FieldError values, joined with errors.Join when there are several.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(data, &m, false); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ParseTemplate reads the manifest template that hotfix pack starts from: a manifest whose file
// rows may leave out what pack measures from the payload itself (version, size, date, platform
// and sha256). Those fields may be absent, or the empty string (0 for size); whatever is given is
// checked as Parse checks it, and everything else must be as valid as in a finished manifest.
// Pack fills the gaps, then Validate or Marshal checks the result in full.
func ParseTemplate(data []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(data, &m, true); err != nil {
		return nil, err
	}
	if err := m.ValidateTemplate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal validates m and returns its canonical encoding: indented JSON in field order, with a
// trailing newline and without HTML escaping. These are the exact bytes a package signs, and
// Parse of them gives back an equal manifest.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil { // Encode ends the value with a newline
		return nil, fmt.Errorf("encode manifest %s: %w", m.ID, err)
	}
	return buf.Bytes(), nil
}
