package verifier

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"relayfix/manifest"
)

// Names of the checks in a FileReport, in the order they are made.
const (
	CheckSize     = "size"
	CheckSHA256   = "sha256"
	CheckVersion  = "version"
	CheckPlatform = "platform"
	CheckDate     = "date"
)

// Check is one check of one file: what the manifest says and what the file has.
type Check struct {
	Name string `json:"check"`
	OK   bool   `json:"ok"`
	Want string `json:"manifest"`
	Got  string `json:"file"`
}

// FileReport is the outcome of checking one file against its row of the file table.
type FileReport struct {
	Path   string  `json:"path"` // install path, as in the manifest
	Checks []Check `json:"checks"`
}

// OK reports whether every check passed.
func (r FileReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Err returns the first failed check as a *MismatchError, or nil when every check passed.
func (r FileReport) Err() error {
	for _, c := range r.Checks {
		if !c.OK {
			return &MismatchError{Path: r.Path, Check: c.Name, Want: c.Want, Got: c.Got}
		}
	}
	return nil
}

// MismatchError says that a file is not what its manifest row says it is.
type MismatchError struct {
	Path  string // install path
	Check string // CheckSize, CheckSHA256, ...
	Want  string // what the manifest says
	Got   string // what the file has
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %s mismatch: manifest says %s, file has %s", e.Path, e.Check, e.Want, e.Got)
}

// Digest is what a file is, in the terms of a manifest row.
type Digest struct {
	Size        int64
	SHA256      string // lower-case hex
	Version     manifest.FileVersion
	VersionErr  error // the file carries conflicting version stamps
	Platform    string
	PlatformErr error // the executable header names a platform this code does not know
	Date        time.Time
}

// Compare checks d against the manifest row want, every check in turn.
func (d Digest) Compare(want manifest.File) FileReport {
	r := FileReport{Path: want.Path}
	add := func(name, w, g string) {
		r.Checks = append(r.Checks, Check{Name: name, OK: w == g, Want: w, Got: g})
	}
	add(CheckSize, fmt.Sprint(want.Size), fmt.Sprint(d.Size))
	add(CheckSHA256, want.SHA256, d.SHA256)
	gotVersion := d.Version.String()
	if d.VersionErr != nil {
		gotVersion = d.VersionErr.Error()
	}
	add(CheckVersion, want.Version.String(), gotVersion)
	gotPlatform := d.Platform
	if d.PlatformErr != nil {
		gotPlatform = d.PlatformErr.Error()
	}
	add(CheckPlatform, want.Platform, gotPlatform)
	add(CheckDate, FormatDate(want.Date), FormatDate(d.Date))
	return r
}

// FormatDate writes a file date the way manifests and reports compare it: UTC, to the second.
func FormatDate(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// Digester computes a Digest of the bytes written to it, in one pass: it hashes them, scans them
// for the version stamp and keeps the first bytes for the executable header.
type Digester struct {
	n       int64
	sha     hash.Hash
	version versionScanner
	header  []byte
}

// NewDigester returns an empty Digester.
func NewDigester() *Digester {
	return &Digester{sha: sha256.New(), header: make([]byte, 0, headerLen)}
}

func (d *Digester) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	d.sha.Write(p)
	d.version.Write(p)
	if len(d.header) < headerLen {
		d.header = append(d.header, p[:min(len(p), headerLen-len(d.header))]...)
	}
	return len(p), nil
}

// Digest returns the digest of everything written so far, dated date.
func (d *Digester) Digest(date time.Time) Digest {
	v, verr := d.version.Version()
	p, perr := platformFromHeader(d.header)
	return Digest{
		Size:        d.n,
		SHA256:      hex.EncodeToString(d.sha.Sum(nil)),
		Version:     v,
		VersionErr:  verr,
		Platform:    p,
		PlatformErr: perr,
		Date:        date.UTC().Truncate(time.Second),
	}
}

// DigestFile computes the digest of the file at path, dated by its modification time.
func DigestFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, fmt.Errorf("digest: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Digest{}, fmt.Errorf("digest: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Digest{}, fmt.Errorf("digest %s: not a regular file", path)
	}
	d := NewDigester()
	if _, err := io.CopyBuffer(d, f, make([]byte, 1<<20)); err != nil {
		return Digest{}, fmt.Errorf("digest %s: %w", path, err)
	}
	return d.Digest(fi.ModTime()), nil
}

// CheckFile checks the file at path against the manifest row want: size, SHA-256, file version,
// platform, and modification time against the row's date (UTC, to the second). The error is for
// a file that cannot be read; a file that reads but does not match is a report whose Err says
// which check failed first.
func CheckFile(path string, want manifest.File) (FileReport, error) {
	d, err := DigestFile(path)
	if err != nil {
		return FileReport{Path: want.Path}, err
	}
	return d.Compare(want), nil
}
