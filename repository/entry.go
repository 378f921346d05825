package repository

import (
	"relayfix/manifest"
)

// Entry is what a repository says about one package, from the signed targets metadata: enough to
// decide whether it applies to a root without downloading it.
type Entry struct {
	Target     string            `json:"-"` // target name, ID.hfx
	Length     int64             `json:"-"` // bytes, as signed
	ID         string            `json:"id"`
	Title      string            `json:"title"`
	Kind       manifest.Kind     `json:"kind"`
	Released   string            `json:"released"`
	Product    manifest.Product  `json:"product"`
	Requires   manifest.Requires `json:"requires"`
	Supersedes []string          `json:"supersedes,omitempty"`
	Fixes      []manifest.Fix    `json:"fixes,omitempty"`
	Files      []EntryFile       `json:"files"`
}

// EntryFile is a row of the package's file table, as much as deciding needs.
type EntryFile struct {
	Path      string               `json:"path"`
	Component string               `json:"component"`
	Version   manifest.FileVersion `json:"version"`
}

// customMeta is the target's custom metadata, under a key of its own so that other tools can
// add theirs.
type customMeta struct {
	Relayfix Entry `json:"relayfix"`
}

func entryOf(m *manifest.Manifest) Entry {
	e := Entry{ID: m.ID, Title: m.Title, Kind: m.Kind, Released: m.Released, Product: m.Product,
		Requires: m.Requires, Supersedes: m.Supersedes, Fixes: m.Fixes}
	for _, f := range m.Files {
		e.Files = append(e.Files, EntryFile{Path: f.Path, Component: f.ComponentName(), Version: f.Version})
	}
	return e
}

// Manifest returns the parts of the package's manifest that its prerequisites are checked on.
func (e Entry) Manifest() *manifest.Manifest {
	return &manifest.Manifest{ID: e.ID, Title: e.Title, Kind: e.Kind, Released: e.Released,
		Product: e.Product, Requires: e.Requires, Supersedes: e.Supersedes, Fixes: e.Fixes}
}
