package store

import (
	"fmt"
	"strings"

	"relayfix/manifest"
	"relayfix/packages/installdb"
	"relayfix/verifier"
)

// DowngradeError is returned when a package's file is older than the newest build ever installed
// at that path. Only rollback goes back.
type DowngradeError struct {
	Package, Path string
	Version, Have manifest.FileVersion
}

func (e *DowngradeError) Error() string {
	return fmt.Sprintf("%s: %s %s is older than %s, the newest installed there; only 'hotfix rollback' goes back",
		e.Package, e.Path, e.Version, e.Have)
}

// checkApplicable checks m against what the root has installed: its prerequisites, supersedence
// and service-pack level through verifier.CheckPrerequisites, then what only the installed-files
// database knows, the high-water marks and whether every file is already in place. A refusal is
// a *verifier.PrerequisiteError or a *DowngradeError.
func checkApplicable(m *manifest.Manifest, prod *installdb.Product, db *installdb.DB) error {
	if err := verifier.CheckPrerequisites(m, prod, installedPackages(m, db)); err != nil {
		return err
	}
	for _, f := range m.Files {
		if hw, ok := db.HighWater[f.Path]; ok && f.Version.Compare(hw) < 0 {
			return &DowngradeError{Package: m.ID, Path: f.Path, Version: f.Version, Have: hw}
		}
	}
	if inPlace(m, db) {
		// Not recorded under its own id, but another package installed the very same builds:
		// applying it would change no file.
		return &verifier.PrerequisiteError{Package: m.ID, Unmet: verifier.UnmetInstalled}
	}
	return nil
}

// installedPackages gives the verifier the packages installed on the root. A hotfix recorded
// under m's id counts as installed only while every file of m is in place: after a component
// rollback took back some of its files but not all (one that took back all of them removed the
// record), applying it again completes it. A service pack counts as installed as long as it is
// recorded: applying it again could only take back what later packages replaced, and only
// rollback goes back.
func installedPackages(m *manifest.Manifest, db *installdb.DB) []installdb.InstalledPackage {
	var out []installdb.InstalledPackage
	for _, p := range db.Packages {
		if m.Kind == manifest.KindHotfix && strings.EqualFold(p.ID, m.ID) && !inPlace(m, db) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// inPlace reports whether every file of m is installed as m has it.
func inPlace(m *manifest.Manifest, db *installdb.DB) bool {
	for _, f := range m.Files {
		if cur, ok := db.Lookup(f.Path); !ok || cur.SHA256 != f.SHA256 {
			return false
		}
	}
	return len(m.Files) > 0
}
