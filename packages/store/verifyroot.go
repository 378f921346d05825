package store

import (
	"context"
	"fmt"

	"relayfix/packages/installdb"
	"relayfix/verifier"
)

// FileCheck is the check of one installed file against its database row.
type FileCheck struct {
	Name    string           `json:"name"`
	Path    string           `json:"path"`
	Version string           `json:"version"`
	Package string           `json:"package"`
	OK      bool             `json:"ok"`
	Drift   []verifier.Check `json:"drift,omitempty"` // the checks that failed
	Error   string           `json:"error,omitempty"` // the file could not be read
}

// VerifyRoot checks every installed file against the installed-files database — size, SHA-256,
// file version, platform, and modification time against the recorded date — as rpm -V does, and
// says what drifted.
func (s *Store) VerifyRoot(ctx context.Context) ([]FileCheck, error) {
	db, err := installdb.Load(s.Root)
	if err != nil {
		return nil, err
	}
	var out []FileCheck
	for _, row := range db.Files {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		fc := FileCheck{Name: row.Name, Path: row.Path, Version: row.Version.String(), Package: row.Package}
		rep, err := verifier.CheckFile(s.Root.Join(row.Path), row.File)
		if err != nil {
			fc.Error = err.Error()
		} else {
			for _, c := range rep.Checks {
				if !c.OK {
					fc.Drift = append(fc.Drift, c)
				}
			}
			fc.OK = rep.OK()
		}
		out = append(out, fc)
	}
	return out, nil
}

// Drifted returns the number of files that failed a check.
func Drifted(checks []FileCheck) int {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	return n
}

func (c FileCheck) String() string {
	if c.OK {
		return fmt.Sprintf("%s %s: ok", c.Path, c.Version)
	}
	if c.Error != "" {
		return fmt.Sprintf("%s %s: %s", c.Path, c.Version, c.Error)
	}
	s := fmt.Sprintf("%s %s:", c.Path, c.Version)
	for _, d := range c.Drift {
		s += fmt.Sprintf(" %s differs (recorded %s, file has %s);", d.Name, d.Want, d.Got)
	}
	return s[:len(s)-1]
}
