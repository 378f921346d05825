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
	// Packages are the packages installed on the root, in the order they were applied. A package
	// listed here counts as installed as a whole: a caller that knows some of its files were
	// rolled back since leaves it out, so that applying it again completes it.
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
	UnmetInstalled      Unmet = "already installed" // the same package is installed
)

// PrerequisiteError says why a package cannot be applied to a root. Its fields let a command print
// the reason in its own form; Error gives it as one sentence in the form a KB article uses:
//
//	KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 1 (relayfix 6.5.7226)
type PrerequisiteError struct {
	Package string // id of the package refused
	Unmet   Unmet
	Need    string // what the package needs, e.g. "service pack 2 (relayfix >= 6.5.7638)"
	Have    string // what the root has, e.g. "service pack 1 (relayfix 6.5.7226)" or "nothing installed"
	By      string // for UnmetSuperseded and UnmetInstalled: the installed package in the way, if known
}

func (e *PrerequisiteError) Error() string {
	switch e.Unmet {
	case UnmetSuperseded:
		return fmt.Sprintf("%s is superseded by the installed %s; applying it would go backwards", e.Package, e.By)
	case UnmetInstalled:
		return fmt.Sprintf("%s is already installed", e.Package)
	case UnmetLevel:
		return fmt.Sprintf("%s would not raise the installed level: it installs %s; this root has %s", e.Package, e.Need, e.Have)
	}
	return fmt.Sprintf("%s requires %s; this root has %s", e.Package, e.Need, e.Have)
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
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: requirement(m), Have: describe(installed)}
		}
		if m.Product.ServicePack <= installed.ServicePack {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetLevel, Need: describeLevel(m.Product.Name, m.Product.ServicePack, m.Product.Version),
				Have: describe(installed)}
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
				Need: describeLevel(m.Product.Name, m.Product.ServicePack, m.Product.Version) + ", an older product version",
				Have: describe(installed)}
		}
		return checkRequires(m, installed)

	case manifest.KindHotfix:
		if empty || installed.Name != m.Product.Name {
			// Name the whole requirement, service pack included: that is what the operator
			// installs first, whatever the root has now.
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: requirement(m), Have: describe(installed)}
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
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetServicePack, Need: requirement(m), Have: describe(installed)}
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
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetProductVersion, Need: requirement(m), Have: describe(installed)}
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

// requirement gives everything m requires as a KB article states it: "service pack 2 (relayfix
// >= 6.5.7638)", "relayfix >= 6.5.7638, < 6.5.7700", "service pack 2 (relayfix)" or "relayfix".
// Every refusal of an unmet requirement names all of it, so that one message tells the operator
// what to install whichever part failed.
func requirement(m *manifest.Manifest) string {
	product := m.Product.Name
	if m.Requires.ProductVersion != "" {
		product += " " + m.Requires.ProductVersion
	}
	if m.Requires.ServicePack > 0 {
		return fmt.Sprintf("service pack %d (%s)", m.Requires.ServicePack, product)
	}
	return product
}

// describe gives what a root has in the form requirement uses: "service pack 1 (relayfix
// 6.5.7226)", or "nothing installed".
func describe(p *InstalledProduct) string {
	if p == nil || p.Name == "" {
		return "nothing installed"
	}
	return describeLevel(p.Name, p.ServicePack, p.Version)
}

func describeLevel(product string, servicePack int, version string) string {
	return fmt.Sprintf("service pack %d (%s %s)", servicePack, product, version)
}
