package installdb

import (
	"fmt"
	"path/filepath"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
)

// Running is a build the relay reports as running: relayd itself or one of its components,
// as the control socket's status gives them.
type Running struct {
	Name    string // component name ("tracking"), or "relayd" for the relay itself
	Binary  string // the file it was started from, absolute or relative to the root; "" if unknown
	Version string // the four-part file version the running build reports; "" if none runs
}

// Stale is a component whose running build is not the file installed for it: the installed
// build takes over only when the component restarts.
type Stale struct {
	Name      string `json:"name"`
	Path      string `json:"path"`      // install path of its file, e.g. bin/relayd
	Running   string `json:"running"`   // version that runs
	Installed string `json:"installed"` // version on disk
}

func (s Stale) String() string {
	return fmt.Sprintf("%s runs %s but %s %s is installed: restart pending", s.Name, s.Running, s.Path, s.Installed)
}

// RestartPending compares what runs with what is installed and returns every component whose
// running build differs from its installed file. A running build is matched to its row by the
// file it runs when that is known, else by component or file name; one that matches no row, or
// reports no version, is not compared. It is the one comparison behind hotfix list, hotfix
// apply and relayd ctl status.
func (db *DB) RestartPending(root layout.Root, running []Running) []Stale {
	var out []Stale
	for _, r := range running {
		if r.Version == "" {
			continue
		}
		row, ok := db.rowFor(root, r)
		if !ok {
			continue
		}
		v, err := record.ParseFileVersion(r.Version)
		if err == nil && v.Compare(row.Version) == 0 {
			continue
		}
		out = append(out, Stale{Name: r.Name, Path: row.Path, Running: r.Version, Installed: row.Version.String()})
	}
	return out
}

func (db *DB) rowFor(root layout.Root, r Running) (InstalledFile, bool) {
	if r.Binary != "" {
		bin := r.Binary
		if filepath.IsAbs(bin) {
			rel, err := filepath.Rel(string(root), bin)
			if err != nil {
				return InstalledFile{}, false
			}
			bin = rel
		}
		return db.Lookup(filepath.ToSlash(bin))
	}
	for _, f := range db.Files {
		if f.ComponentName() == r.Name || f.Name == r.Name {
			return f, true
		}
	}
	return InstalledFile{}, false
}
