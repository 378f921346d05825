package verifier

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"relayfix/manifest"
	"relayfix/packages/installdb"
)

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

// CheckPrerequisites reports whether m may be applied to a root whose product record is prod
// (nil, or with no Name, for an empty root) and that has the packages installed, in the order
// they were applied. A package listed in installed counts as installed as a whole: a caller that
// knows some of its files were rolled back since leaves it out, so that applying it again
// completes it. It returns a *PrerequisiteError for a prerequisite that is
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
func CheckPrerequisites(m *manifest.Manifest, prod *installdb.Product, installed []installdb.InstalledPackage) error {
	if m == nil {
		return errors.New("check prerequisites: no manifest")
	}
	for _, p := range installed {
		if strings.EqualFold(p.ID, m.ID) {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetInstalled, By: p.ID}
		}
	}
	for _, p := range installed {
		for _, s := range p.Supersedes {
			if strings.EqualFold(s, m.ID) {
				return &PrerequisiteError{Package: m.ID, Unmet: UnmetSuperseded, By: p.ID}
			}
		}
	}
	empty := prod == nil || prod.Name == ""

	switch m.Kind {
	case manifest.KindServicePack:
		if empty {
			return nil
		}
		if prod.Name != m.Product.Name {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: requirement(m), Have: describe(prod)}
		}
		if m.Product.ServicePack <= prod.ServicePack {
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetLevel, Need: describeLevel(m.Product.Name, m.Product.ServicePack, m.Product.Version),
				Have: describe(prod)}
		}
		have, err := installedVersion(prod)
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
				Have: describe(prod)}
		}
		return checkRequires(m, prod)

	case manifest.KindHotfix:
		if empty || prod.Name != m.Product.Name {
			// Name the whole requirement, service pack included: that is what the operator
			// installs first, whatever the root has now.
			return &PrerequisiteError{Package: m.ID, Unmet: UnmetProduct, Need: requirement(m), Have: describe(prod)}
		}
		return checkRequires(m, prod)
	}
	return fmt.Errorf("%s: unknown package kind %q", m.ID, m.Kind)
}

// checkRequires checks m's service-pack level and product-version constraint against an
// installed product. The level comes first: it is what an operator acts on ("install SP2"), and
// the version constraint usually only restates it.
func checkRequires(m *manifest.Manifest, prod *installdb.Product) error {
	if prod.ServicePack < m.Requires.ServicePack {
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetServicePack, Need: requirement(m), Have: describe(prod)}
	}
	if m.Requires.ProductVersion == "" {
		return nil
	}
	c, err := semver.NewConstraint(m.Requires.ProductVersion)
	if err != nil {
		return fmt.Errorf("%s: product version constraint %q: %w", m.ID, m.Requires.ProductVersion, err)
	}
	have, err := installedVersion(prod)
	if err != nil {
		return err
	}
	if !c.Check(have) {
		return &PrerequisiteError{Package: m.ID, Unmet: UnmetProductVersion, Need: requirement(m), Have: describe(prod)}
	}
	return nil
}

func installedVersion(prod *installdb.Product) (*semver.Version, error) {
	v, err := semver.NewVersion(prod.Version)
	if err != nil {
		return nil, fmt.Errorf("installed product version %q: %w", prod.Version, err)
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
func describe(p *installdb.Product) string {
	if p == nil || p.Name == "" {
		return "nothing installed"
	}
	return describeLevel(p.Name, p.ServicePack, p.Version)
}

func describeLevel(product string, servicePack int, version string) string {
	return fmt.Sprintf("service pack %d (%s %s)", servicePack, product, version)
}
