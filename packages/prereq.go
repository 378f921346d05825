package packages

import (
	"errors"
	"fmt"

	"github.com/Masterminds/semver/v3"

	"relayfix/manifest"
)

// PrerequisiteError says which prerequisite of a package the root does not meet.
type PrerequisiteError struct {
	Package string
	Need    string // e.g. "service pack 2 (relayfix >= 6.5.7638)"
	Have    string // e.g. "service pack 1 (relayfix 6.5.7226)" or "nothing installed"
}

func (e *PrerequisiteError) Error() string {
	return fmt.Sprintf("%s requires %s; this root has %s", e.Package, e.Need, e.Have)
}

// SupersededError is returned for a hotfix that an installed hotfix already replaces.
type SupersededError struct{ Package, By string }

func (e *SupersededError) Error() string {
	return fmt.Sprintf("%s is superseded by the installed %s; applying it would go backwards", e.Package, e.By)
}

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

// ErrAlreadyInstalled is wrapped when every file of a package is already in place.
var ErrAlreadyInstalled = errors.New("already installed")

func describeProduct(p *Product) string {
	if p == nil {
		return "nothing installed"
	}
	return fmt.Sprintf("service pack %d (%s %s)", p.ServicePack, p.Name, p.Version)
}

// checkApplicable checks the prerequisites, supersedence and high-water marks of m against what
// root has installed.
func checkApplicable(m *manifest.Manifest, prod *Product, db *DB) error {
	switch m.Kind {
	case manifest.KindServicePack:
		if prod != nil && prod.Name != m.Product.Name {
			return &PrerequisiteError{Package: m.ID, Need: "product " + m.Product.Name, Have: describeProduct(prod)}
		}
		if prod != nil && prod.ServicePack > m.Product.ServicePack {
			return &PrerequisiteError{Package: m.ID, Need: fmt.Sprintf("service pack %d or earlier", m.Product.ServicePack), Have: describeProduct(prod)}
		}
	case manifest.KindHotfix:
		need := ""
		if m.Requires.ServicePack > 0 {
			need = fmt.Sprintf("service pack %d", m.Requires.ServicePack)
		}
		if m.Requires.ProductVersion != "" {
			c := fmt.Sprintf("%s %s", m.Product.Name, m.Requires.ProductVersion)
			if need == "" {
				need = c
			} else {
				need += " (" + c + ")"
			}
		}
		if need == "" {
			need = "product " + m.Product.Name
		}
		if prod == nil || (m.Product.Name != "" && prod.Name != m.Product.Name) || prod.ServicePack < m.Requires.ServicePack {
			return &PrerequisiteError{Package: m.ID, Need: need, Have: describeProduct(prod)}
		}
		if m.Requires.ProductVersion != "" {
			c, err := semver.NewConstraint(m.Requires.ProductVersion)
			if err != nil {
				return fmt.Errorf("%s: product version constraint %q: %w", m.ID, m.Requires.ProductVersion, err)
			}
			v, err := semver.NewVersion(prod.Version)
			if err != nil {
				return fmt.Errorf("installed product version %q: %w", prod.Version, err)
			}
			if !c.Check(v) {
				return &PrerequisiteError{Package: m.ID, Need: need, Have: describeProduct(prod)}
			}
		}
		for _, p := range db.Packages {
			for _, s := range p.Supersedes {
				if s == m.ID {
					return &SupersededError{Package: m.ID, By: p.ID}
				}
			}
		}
	default:
		return fmt.Errorf("%s: unknown package kind %q", m.ID, m.Kind)
	}
	same := len(m.Files) > 0
	for _, f := range m.Files {
		if hw, ok := db.HighWater[f.Path]; ok && f.Version.Compare(hw) < 0 {
			return &DowngradeError{Package: m.ID, Path: f.Path, Version: f.Version, Have: hw}
		}
		if cur, ok := db.Lookup(f.Path); !ok || cur.SHA256 != f.SHA256 {
			same = false
		}
	}
	if same {
		return fmt.Errorf("%s: %w", m.ID, ErrAlreadyInstalled)
	}
	return nil
}
