package verifier

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"relayfix/manifest"
)

// InstalledProduct is what an install root has at the product level, in the terms the
// prerequisite checks need. The install store converts its own records into it: verifier cannot
// import the store, which imports verifier to check files.
type InstalledProduct struct {
	Name        string // product name; empty for a root where nothing is installed
	Version     string // product version, semver, e.g. 6.5.7638
	ServicePack int    // service-pack level, e.g. 2
	// Packages are the packages installed on the root, in the order they were applied.
	Packages []InstalledPackage
}

// InstalledPackage is one package installed on a root.
type InstalledPackage struct {
	ID         string
	Supersedes []string // ids of the packages it replaced, from its manifest
}

// Unmet names the kind of prerequisite a package does not meet.
type Unmet string

// The prerequisites CheckPrerequisites checks.
const (
	UnmetProduct        Unmet = "product"           // the product is not installed, or another one is
	UnmetServicePack    Unmet = "service pack"      // the service-pack level is below the one required
	UnmetProductVersion Unmet = "product version"   // the product version is outside the constraint
	UnmetLevel          Unmet = "level"             // a service pack would not raise the installed level
	UnmetSuperseded     Unmet = "superseded"        // an installed package already replaces it
	UnmetInstalled      Unmet = "already installed" // the same package id is installed
)

// PrerequisiteError says why a package cannot be applied to a root. Its fields let a command print
// the reason in its own form; Error gives it as a sentence.
type PrerequisiteError struct {
	Package string // id of the package refused
	Unmet   Unmet
	Need    string // what the package needs, e.g. "service pack 2"
	Have    string // what the root has, e.g. "service pack 1 (6.5.7226)"
	By      string // for UnmetSuperseded and UnmetInstalled: the installed package in the way
}

func (e *PrerequisiteError) Error() string {
	switch e.Unmet {
	case UnmetSuperseded:
		return fmt.Sprintf("%s is superseded by the installed package %s", e.Package, e.By)
	case UnmetInstalled:
		return fmt.Sprintf("%s is already installed", e.Package)
	case UnmetLevel:
		return fmt.Sprintf("%s would not raise the installed level: it installs %s; installed: %s", e.Package, e.Need, e.Have)
	}
	return fmt.Sprintf("%s requires %s; installed: %s", e.Package, e.Need, e.Have)
}

// CheckPrerequisites reports whether m may be applied to a root that has installed, which is nil
// (or has no Name) for an empty root. It returns a *PrerequisiteError for a prerequisite that is
// not met, and another error when the records themselves cannot be read.
//
// A package is refused if the same id is installed, or if an installed package supersedes it. A
// service pack installs onto an empty root or raises the level of the same product: a lower or
// equal level, or an older product version, is refused (only rollback goes back). A hotfix needs
// its product installed at the required service-pack level at least, with a product version that
// meets its constraint. A service pack's own requirements, if it states any, are checked against
// an installed product only: it may always lay down a fresh root.
//
// Constraints follow Masterminds/semver, so ">= 6.5.7638" does not admit a pre-release such as
// 6.5.7651-beta.1; a constraint that should must say so (">= 6.5.7638-0").
func CheckPrerequisites(m *manifest.Manifest, installed *InstalledProduct) error {
	if m == nil {
		return errors.New("check prerequisites: no manifest")
	}
	if installed != nil {
		for _, p := range installed.Packages {
			if strings.EqualFold(p.ID, m.ID) {
				return &PrerequisiteError{Package: m.ID, Unmet: UnmetInstalled, By: p.ID}
			}
		}
		for _, p := range installed.Packages {
			for _, s := range p.Supersedes {
				if strings.EqualFold(s, m.ID) {
					return &PrerequisiteError{Package: m.ID, Unmet: UnmetSuperseded, By: p.ID}
				}
			}
		}
	}
	empty := installed == nil || installed.Name == ""

	switch m.Kind {
	case manifest.KindServicePack:
		if empty {
			return nil
		}
		if installed.Name != m.Product.Name {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: "product " + m.Product.Name, Have: describeProduct(installed)}
		}
		if m.Product.ServicePack <= installed.ServicePack {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetLevel,
				Need: fmt.Sprintf("service pack %d (%s)", m.Product.ServicePack, m.Product.Version),
				Have: describeLevel(installed)}
		}
		have, err := installedVersion(installed)
		if err != nil {
			return err
		}
		want, err := semver.NewVersion(m.Product.Version)
		if err != nil {
			return fmt.Errorf("%s: product version %q: %w", m.ID, m.Product.Version, err)
		}
		if want.LessThan(have) {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetLevel,
				Need: fmt.Sprintf("service pack %d (%s), an older product version", m.Product.ServicePack, m.Product.Version),
				Have: describeLevel(installed)}
		}
		return checkRequires(m, installed)

	case manifest.KindHotfix:
		if empty {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: "product " + m.Product.Name, Have: "nothing (empty root)"}
		}
		if installed.Name != m.Product.Name {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: "product " + m.Product.Name, Have: describeProduct(installed)}
		}
		return checkRequires(m, installed)
	}
	return fmt.Errorf("%s: unknown package kind %q", m.ID, m.Kind)
}

// checkRequires checks m's service-pack level and product-version constraint against an
// installed product. The level comes first: it is what an operator acts on ("install SP2"), and
// the version constraint usually only restates it.
func checkRequires(m *manifest.Manifest, installed *InstalledProduct) error {
	if installed.ServicePack < m.Requires.ServicePack {
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetServicePack,
			Need: fmt.Sprintf("service pack %d", m.Requires.ServicePack), Have: describeLevel(installed)}
	}
	if m.Requires.ProductVersion == "" {
		return nil
	}
	c, err := semver.NewConstraint(m.Requires.ProductVersion)
	if err != nil {
		return fmt.Errorf("%s: product version constraint %q: %w", m.ID, m.Requires.ProductVersion, err)
	}
	have, err := installedVersion(installed)
	if err != nil {
		return err
	}
	if !c.Check(have) {
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetProductVersion,
			Need: "product version " + m.Requires.ProductVersion,
			Have: fmt.Sprintf("product version %s (service pack %d)", installed.Version, installed.ServicePack)}
	}
	return nil
}

func installedVersion(installed *InstalledProduct) (*semver.Version, error) {
	v, err := semver.NewVersion(installed.Version)
	if err != nil {
		return nil, fmt.Errorf("installed product version %q: %w", installed.Version, err)
	}
	return v, nil
}

// describeLevel gives the installed level as a KB article would: "service pack 1 (6.5.7226)".
func describeLevel(p *InstalledProduct) string {
	return fmt.Sprintf("service pack %d (%s)", p.ServicePack, p.Version)
}

func describeProduct(p *InstalledProduct) string {
	return fmt.Sprintf("product %s, %s", p.Name, describeLevel(p))
}
