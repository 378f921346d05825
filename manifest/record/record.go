// Package record holds the plain records that a manifest shares with the install database: a
// row of the file table, the four-part file version and the kind of package. It imports only the
// standard library, so that a reader of the install database (relayd, which only needs the
// checksum of the build it runs) does not link the manifest parser and its semantic-version
// constraints. Package manifest re-exports these types under their familiar names, the way os
// re-exports io/fs.
package record

import "time"

// Kind says whether a package lays down a product level or patches one.
type Kind string

// Package kinds.
const (
	KindServicePack Kind = "servicepack"
	KindHotfix      Kind = "hotfix"
)

// File is one row of the file table.
type File struct {
	Name      string      `json:"name"`                // file name as the KB lists it, e.g. msgtrack
	Path      string      `json:"path"`                // install path relative to the root, e.g. bin/msgtrack
	Component string      `json:"component,omitempty"` // component it belongs to; defaults to Name
	Version   FileVersion `json:"version"`             // four-part file version
	Size      int64       `json:"size"`                // bytes
	Date      time.Time   `json:"date"`                // UTC date and time, whole seconds
	Platform  string      `json:"platform"`            // GOOS/GOARCH, e.g. linux/amd64
	SHA256    string      `json:"sha256"`              // lower-case hex
	Mode      uint32      `json:"mode,omitempty"`      // permission bits; 0755 when zero
}

// ComponentName returns the component the file belongs to.
func (f File) ComponentName() string {
	if f.Component != "" {
		return f.Component
	}
	return f.Name
}

// Services a manifest may ask to restart: the components the relay supervises and restarts
// through its control socket. A name outside this set would be accepted by nobody: the package
// would install, the running build would stay the old one, and every check would pass.
const (
	ServiceTracking = "tracking" // the message-tracking plugin, bin/msgtrack
)

// KnownServices returns the services a manifest may name, in order. Adding a service the relay
// can restart is one line here.
func KnownServices() []string {
	return []string{ServiceTracking}
}
