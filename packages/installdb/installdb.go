// Package installdb owns the records of what an install root has installed: the product record
// (ROOT/product.json) and the installed-files database (ROOT/hotfix/installed.json), their
// types, loading, saving and lookup. The install store writes them; the verifier and the relay
// read them. It depends on nothing heavier than manifest/record, so that relayd can learn the
// expected checksum of the build it runs without linking the package manager.
package installdb

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
	"relayfix/manifest/record"
)

// Product is the content of ROOT/product.json: what is installed at the product level.
type Product struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`      // semver, e.g. 6.5.7638
	ServicePack int      `json:"service_pack"` // e.g. 2
	Packages    []string `json:"packages"`     // ids of the installed packages, in order
}

// InstalledFile is one row of the installed-files database.
type InstalledFile struct {
	record.File
	Package   string    `json:"package"`      // id of the package that installed it
	Installed time.Time `json:"installed"`    // when, UTC
	TxID      string    `json:"tx,omitempty"` // the transaction that installed it
	// Previous is the stack of builds this one replaced, newest first, each with the backup that
	// rollback restores it from.
	Previous []PreviousBuild `json:"previous,omitempty"`
}

// PreviousBuild is a build that was replaced, kept so that rollback can restore it.
type PreviousBuild struct {
	record.File
	Package   string    `json:"package"`
	Installed time.Time `json:"installed"`
	TxID      string    `json:"tx,omitempty"`
	// Backup is the copy of the file, relative to the root; its SHA-256 is File.SHA256.
	Backup string `json:"backup"`
}

// InstalledPackage records a package that was applied to the root.
type InstalledPackage struct {
	ID         string      `json:"id"`
	Title      string      `json:"title"`
	Kind       record.Kind `json:"kind"`
	Released   string      `json:"released,omitempty"`
	Installed  time.Time   `json:"installed"`
	TxID       string      `json:"tx"`
	Services   []string    `json:"services,omitempty"`   // what must restart when its files change
	Supersedes []string    `json:"supersedes,omitempty"` // hotfixes it replaced
	// Replaced is, for a service pack applied on top of another, the product level it replaced:
	// what rolling the service pack back restores.
	Replaced *Level `json:"replaced,omitempty"`
}

// Level is a product level: what product.json says apart from the package list.
type Level struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	ServicePack int    `json:"service_pack"`
}

// DB is the installed-files database, ROOT/hotfix/installed.json.
type DB struct {
	Files    []InstalledFile    `json:"files"`
	Packages []InstalledPackage `json:"packages,omitempty"`
	// HighWater is, per install path, the newest file version ever installed there. Apply refuses
	// anything older (an attacker or a mistake cannot downgrade through apply); only rollback goes
	// back, and only to a local backup.
	HighWater map[string]record.FileVersion `json:"high_water,omitempty"`
}

// Lookup returns the row for the install path rel (slash-separated, relative to the root).
func (db *DB) Lookup(rel string) (InstalledFile, bool) {
	for _, f := range db.Files {
		if f.Path == rel {
			return f, true
		}
	}
	return InstalledFile{}, false
}

// Package returns the record of the installed package id.
func (db *DB) Package(id string) (InstalledPackage, bool) {
	for _, p := range db.Packages {
		if p.ID == id {
			return p, true
		}
	}
	return InstalledPackage{}, false
}

// Clone returns a deep copy, so that a transaction can compute the database it will commit
// without touching the one it read.
func (db *DB) Clone() *DB {
	b, err := json.Marshal(db)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	var c DB
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// Put replaces the row for f.Path, or adds it, keeping rows sorted by path.
func (db *DB) Put(f InstalledFile) {
	for i := range db.Files {
		if db.Files[i].Path == f.Path {
			db.Files[i] = f
			return
		}
	}
	db.Files = append(db.Files, f)
	slices.SortFunc(db.Files, func(a, b InstalledFile) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
}

// Load reads the installed-files database of root. A root where nothing was ever installed has
// an empty database.
func Load(root layout.Root) (*DB, error) {
	var db DB
	if _, err := safefile.ReadJSON(root.InstalledDB(), "installed-files database", &db); err != nil {
		return nil, err
	}
	return &db, nil
}

// Checksum returns the SHA-256 the database records for the install path rel, and whether rel
// is listed at all. It is all the relay needs: it runs only a build whose checksum matches.
func Checksum(root layout.Root, rel string) (sum []byte, listed bool, err error) {
	db, err := Load(root)
	if err != nil {
		return nil, false, err
	}
	row, ok := db.Lookup(rel)
	if !ok {
		return nil, false, nil
	}
	sum, err = hex.DecodeString(row.SHA256)
	if err != nil {
		return nil, true, fmt.Errorf("installed-files database %s: %s: bad SHA-256 %q: %w", root.InstalledDB(), rel, row.SHA256, err)
	}
	return sum, true, nil
}

// Save writes the installed-files database of root durably.
func Save(root layout.Root, db *DB) error {
	return safefile.WriteJSON(root.InstalledDB(), db, 0o644)
}

// LoadProduct reads ROOT/product.json; it returns nil and no error on a bare root.
func LoadProduct(root layout.Root) (*Product, error) {
	var p Product
	if found, err := safefile.ReadJSON(root.Product(), "product file", &p); !found {
		return nil, err
	}
	return &p, nil
}

// SaveProduct writes ROOT/product.json durably.
func SaveProduct(root layout.Root, p *Product) error {
	return safefile.WriteJSON(root.Product(), p, 0o644)
}
