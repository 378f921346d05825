// Package manifest defines the hotfix manifest: what a package is, what it applies to, and the
// file table that says exactly which files it installs. A manifest is the signed part of a package,
// so parsing is strict: unknown fields are rejected and every error names the field at fault.
//
// Parse reads and validates a finished manifest; Marshal writes its canonical form, the bytes a
// package signs, which Parse reads back to an equal manifest. ParseTemplate reads the template
// hotfix pack starts from, where the file rows may leave out what pack measures from the payload.
// FileVersion is the four-part file version (6.5.7651.45) that file tables use; product versions
// and prerequisite constraints are semantic versions (Masterminds/semver). The file-table row, the
// file version and the package kind are defined in manifest/record, which the install database
// shares without linking the parser.
package manifest

import (
	"time"

	"relayfix/manifest/record"
)

// SchemaVersion is the manifest format version this package reads and writes.
const SchemaVersion = 1

// Kind says whether a package lays down a product level or patches one.
type Kind = record.Kind

// Package kinds.
const (
	KindServicePack = record.KindServicePack
	KindHotfix      = record.KindHotfix
)

// Manifest is a package's signed description, in the shape of a KB article's tables.
type Manifest struct {
	Schema   int    `json:"schema"`
	ID       string `json:"id"`       // e.g. KB910618 or SP2
	Title    string `json:"title"`    // one line
	Kind     Kind   `json:"kind"`     // servicepack or hotfix
	Released string `json:"released"` // release date, YYYY-MM-DD
	// Expires, when set, is the instant after which the package is refused (a freeze on stale
	// metadata cannot then last forever).
	Expires *time.Time `json:"expires,omitempty"`

	Product    Product  `json:"product"`
	Requires   Requires `json:"requires"`
	Files      []File   `json:"files"`
	Restart    Restart  `json:"restart"`
	Supersedes []string `json:"supersedes,omitempty"`
	// Fixes are the known problems the package fixes, each with the crash signature by which a
	// host recognises it has the problem.
	Fixes []Fix `json:"fixes,omitempty"`
}

// Fix is a known problem a package fixes, in the terms a crash record uses: the component that
// crashed, the builds of it that have the problem and the crash's signature. Whoever matches
// crashes against packages takes the signature from here, so the knowledge of which crash is
// which problem ships, signed, with the fix.
type Fix struct {
	Component string `json:"component"` // e.g. tracking
	// Affected is a constraint on the component's four-part file version, e.g.
	// ">= 6.5.7638.1, < 6.5.7651.45" (see ParseVersionConstraint).
	Affected string `json:"affected"`
	// Signature is the crash signature: the panic kind and the innermost frame in relayfix's own
	// code, e.g. "nil pointer dereference in relayfix/relay/trackplugin.recordsFor".
	Signature string `json:"signature"`
	Summary   string `json:"summary"` // one line
}

// Product names the product a package belongs to. For a service pack, Version and ServicePack are
// the product version and level it installs; for a hotfix they are left empty.
type Product struct {
	Name        string `json:"name"`
	Version     string `json:"version,omitempty"`      // semver, e.g. 6.5.7638
	ServicePack int    `json:"service_pack,omitempty"` // e.g. 2
}

// Requires states the prerequisites of a package.
type Requires struct {
	// ProductVersion is a Masterminds/semver constraint on the installed product version,
	// e.g. ">= 6.5.7638".
	ProductVersion string `json:"product_version,omitempty"`
	// ServicePack is the minimum installed service-pack level.
	ServicePack int `json:"service_pack,omitempty"`
}

// File is one row of the file table.
type File = record.File

// FileVersion is a four-part file version (see record.FileVersion).
type FileVersion = record.FileVersion

// ParseFileVersion parses "a.b.c.d" (see record.ParseFileVersion).
func ParseFileVersion(s string) (FileVersion, error) { return record.ParseFileVersion(s) }

// MustParseFileVersion is ParseFileVersion for constants; it panics on a malformed version.
func MustParseFileVersion(s string) FileVersion { return record.MustParseFileVersion(s) }

// Restart says what must restart for the package to take effect.
type Restart struct {
	Services []string `json:"services,omitempty"` // e.g. ["tracking"]
	Reboot   bool     `json:"reboot"`
}
