package packages

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest"
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
	manifest.File
	Package   string    `json:"package"`   // id of the package that installed it
	Installed time.Time `json:"installed"` // when, UTC
}

// DB is the installed-files database, ROOT/hotfix/installed.json.
type DB struct {
	Files []InstalledFile `json:"files"`
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

// LoadDB reads the installed-files database of root. A root where nothing was ever installed has
// an empty database.
func LoadDB(root layout.Root) (*DB, error) {
	b, err := os.ReadFile(root.InstalledDB())
	if errors.Is(err, fs.ErrNotExist) {
		return &DB{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read installed-files database: %w", err)
	}
	var db DB
	if err := json.Unmarshal(b, &db); err != nil {
		return nil, fmt.Errorf("installed-files database %s is corrupt: %w", root.InstalledDB(), err)
	}
	return &db, nil
}
