package verifier

import (
	"errors"
	"strings"
	"testing"
	"time"

	"relayfix/manifest"
	"relayfix/packages/installdb"
)

// rootHas is what a test root has installed: its product record and its packages.
type rootHas struct {
	Name        string
	Version     string
	ServicePack int
	Packages    []installdb.InstalledPackage
}

// check calls CheckPrerequisites with what r describes (an empty root when r is nil).
func check(m *manifest.Manifest, r *rootHas) error {
	if r == nil {
		return CheckPrerequisites(m, nil, nil)
	}
	return CheckPrerequisites(m, &installdb.Product{Name: r.Name, Version: r.Version, ServicePack: r.ServicePack}, r.Packages)
}

// servicePack returns a valid service-pack manifest that installs level sp at version.
func servicePack(t *testing.T, id string, sp int, version string) *manifest.Manifest {
	t.Helper()
	m := &manifest.Manifest{
		Schema:   manifest.SchemaVersion,
		ID:       id,
		Title:    "relayfix " + id,
		Kind:     manifest.KindServicePack,
		Released: "2005-10-17",
		Product:  manifest.Product{Name: "relayfix", Version: version, ServicePack: sp},
		Files: []manifest.File{{
			Name: "relayd", Path: "bin/relayd", Version: manifest.MustParseFileVersion(version + ".1"),
			Size: 1000, Date: time.Date(2005, 10, 1, 12, 0, 0, 0, time.UTC), Platform: "linux/amd64",
			SHA256: strings.Repeat("0", 64),
		}},
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("test manifest %s is invalid: %v", id, err)
	}
	return m
}

// hotfix returns a valid hotfix manifest with the given prerequisites.
func hotfix(t *testing.T, id string, sp int, constraint string, supersedes ...string) *manifest.Manifest {
	t.Helper()
	m := &manifest.Manifest{
		Schema:     manifest.SchemaVersion,
		ID:         id,
		Title:      "Fix " + id,
		Kind:       manifest.KindHotfix,
		Released:   "2006-03-14",
		Product:    manifest.Product{Name: "relayfix"},
		Requires:   manifest.Requires{ProductVersion: constraint, ServicePack: sp},
		Supersedes: supersedes,
		Files: []manifest.File{{
			Name: "msgtrack", Path: "bin/msgtrack", Version: manifest.MustParseFileVersion("6.5.7651.45"),
			Size: 99040, Date: time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC), Platform: "linux/386",
			SHA256: strings.Repeat("a", 64),
		}},
		Restart: manifest.Restart{Services: []string{"tracking"}},
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("test manifest %s is invalid: %v", id, err)
	}
	return m
}

func TestCheckPrerequisites(t *testing.T) {
	sp1 := &rootHas{Name: "relayfix", Version: "6.5.7226", ServicePack: 1,
		Packages: []installdb.InstalledPackage{{ID: "SP1"}}}
	sp2 := &rootHas{Name: "relayfix", Version: "6.5.7638", ServicePack: 2,
		Packages: []installdb.InstalledPackage{{ID: "SP2"}}}
	sp2fixed := &rootHas{Name: "relayfix", Version: "6.5.7638", ServicePack: 2,
		Packages: []installdb.InstalledPackage{{ID: "SP2"}, {ID: "KB910618", Supersedes: []string{"KB900001"}}}}
	sp3 := &rootHas{Name: "relayfix", Version: "6.5.7800", ServicePack: 3,
		Packages: []installdb.InstalledPackage{{ID: "SP3", Supersedes: []string{"kb910618"}}}}
	other := &rootHas{Name: "mailgate", Version: "6.5.7638", ServicePack: 2}
	beta := &rootHas{Name: "relayfix", Version: "6.5.7651-beta.1", ServicePack: 2}

	tests := []struct {
		name      string
		m         *manifest.Manifest
		installed *rootHas
		unmet     Unmet  // empty when the package may be applied
		by        string // PrerequisiteError.By, when unmet is set
		want      string // exact message when unmet is set
	}{
		{name: "service pack onto empty root", m: servicePack(t, "SP2", 2, "6.5.7638")},
		{name: "service pack onto root without product", m: servicePack(t, "SP2", 2, "6.5.7638"), installed: &rootHas{}},
		{name: "service pack raises level", m: servicePack(t, "SP2", 2, "6.5.7638"), installed: sp1},
		{
			name: "service pack lowers level", m: servicePack(t, "SP1", 1, "6.5.7226"), installed: sp2,
			unmet: UnmetLevel, want: "SP1 would not raise the installed level: it installs service pack 1 (relayfix 6.5.7226); this root has service pack 2 (relayfix 6.5.7638)",
		},
		{
			name: "service pack at same level", m: servicePack(t, "SP2b", 2, "6.5.7638"), installed: sp2,
			unmet: UnmetLevel, want: "SP2b would not raise the installed level: it installs service pack 2 (relayfix 6.5.7638); this root has service pack 2 (relayfix 6.5.7638)",
		},
		{
			name: "service pack with older version", m: servicePack(t, "SP3", 3, "6.5.7000"), installed: sp2,
			unmet: UnmetLevel, want: "SP3 would not raise the installed level: it installs service pack 3 (relayfix 6.5.7000), an older product version; this root has service pack 2 (relayfix 6.5.7638)",
		},
		{
			name: "service pack for another product", m: servicePack(t, "SP3", 3, "6.5.7800"), installed: other,
			unmet: UnmetProduct, want: "SP3 requires relayfix; this root has service pack 2 (mailgate 6.5.7638)",
		},
		{
			name: "service pack already installed", m: servicePack(t, "SP2", 2, "6.5.7638"), installed: &rootHas{Name: "relayfix", Version: "6.5.7226", ServicePack: 1, Packages: []installdb.InstalledPackage{{ID: "sp2"}}},
			unmet: UnmetInstalled, by: "sp2", want: "SP2 is already installed",
		},
		{
			name: "service pack requirement met", installed: sp2,
			m: func() *manifest.Manifest {
				m := servicePack(t, "SP3", 3, "6.5.7800")
				m.Requires = manifest.Requires{ProductVersion: ">= 6.5.7638", ServicePack: 2}
				return m
			}(),
		},
		{
			name: "service pack requirement not met", installed: sp1,
			m: func() *manifest.Manifest {
				m := servicePack(t, "SP3", 3, "6.5.7800")
				m.Requires = manifest.Requires{ServicePack: 2}
				return m
			}(),
			unmet: UnmetServicePack, want: "SP3 requires service pack 2 (relayfix); this root has service pack 1 (relayfix 6.5.7226)",
		},
		{
			name: "service pack requirement ignored on empty root",
			m: func() *manifest.Manifest {
				m := servicePack(t, "SP3", 3, "6.5.7800")
				m.Requires = manifest.Requires{ServicePack: 2}
				return m
			}(),
		},
		{name: "hotfix on its service pack", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: sp2},
		{name: "hotfix on a later service pack", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: &rootHas{Name: "relayfix", Version: "6.5.7800", ServicePack: 3}},
		{
			name: "KB910618 on SP1", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: sp1,
			unmet: UnmetServicePack, want: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 1 (relayfix 6.5.7226)",
		},
		{
			name: "hotfix on empty root", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"),
			unmet: UnmetProduct, want: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has nothing installed",
		},
		{
			name: "hotfix on root without product", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: &rootHas{},
			unmet: UnmetProduct, want: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has nothing installed",
		},
		{
			name: "hotfix for another product", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: other,
			unmet: UnmetProduct, want: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 2 (mailgate 6.5.7638)",
		},
		{
			name: "hotfix version constraint not met", m: hotfix(t, "KB910700", 0, ">= 6.5.7638, < 6.5.7700"), installed: sp3,
			unmet: UnmetProductVersion, want: "KB910700 requires relayfix >= 6.5.7638, < 6.5.7700; this root has service pack 3 (relayfix 6.5.7800)",
		},
		{name: "hotfix version constraint met", m: hotfix(t, "KB910700", 0, ">= 6.5.7638, < 6.5.7700"), installed: sp2},
		{name: "hotfix with only a level", m: hotfix(t, "KB910701", 2, ""), installed: sp2},
		{
			name: "hotfix with only a level on SP1", m: hotfix(t, "KB910701", 2, ""), installed: sp1,
			unmet: UnmetServicePack, want: "KB910701 requires service pack 2 (relayfix); this root has service pack 1 (relayfix 6.5.7226)",
		},
		{
			name: "hotfix with only a constraint on an empty root", m: hotfix(t, "KB910700", 0, ">= 6.5.7638, < 6.5.7700"),
			unmet: UnmetProduct, want: "KB910700 requires relayfix >= 6.5.7638, < 6.5.7700; this root has nothing installed",
		},
		{
			name: "constraint excludes pre-release", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: beta,
			unmet: UnmetProductVersion, want: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 2 (relayfix 6.5.7651-beta.1)",
		},
		{name: "constraint admits pre-release when it says so", m: hotfix(t, "KB910618", 2, ">= 6.5.7638-0"), installed: beta},
		{
			name: "hotfix already installed", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: sp2fixed,
			unmet: UnmetInstalled, by: "KB910618", want: "KB910618 is already installed",
		},
		{
			name: "hotfix superseded by installed hotfix", m: hotfix(t, "KB900001", 2, ""), installed: sp2fixed,
			unmet: UnmetSuperseded, by: "KB910618", want: "KB900001 is superseded by the installed KB910618; applying it would go backwards",
		},
		{
			name: "hotfix superseded by service pack", m: hotfix(t, "KB910618", 2, ">= 6.5.7638"), installed: sp3,
			unmet: UnmetSuperseded, by: "SP3", want: "KB910618 is superseded by the installed SP3; applying it would go backwards",
		},
		{name: "hotfix that supersedes an installed one", m: hotfix(t, "KB920000", 2, "", "KB910618"), installed: sp2fixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.m, tt.installed)
			if tt.unmet == "" {
				if err != nil {
					t.Fatalf("CheckPrerequisites = %v, want nil", err)
				}
				return
			}
			var pe *PrerequisiteError
			if !errors.As(err, &pe) {
				t.Fatalf("CheckPrerequisites = %v, want a *PrerequisiteError", err)
			}
			if pe.Unmet != tt.unmet || pe.Package != tt.m.ID || pe.By != tt.by {
				t.Errorf("got Unmet %q Package %q By %q, want %q %q %q", pe.Unmet, pe.Package, pe.By, tt.unmet, tt.m.ID, tt.by)
			}
			if err.Error() != tt.want {
				t.Errorf("message\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

// TestCheckPrerequisitesBadRecords covers inputs that are not a prerequisite left unmet but
// records that cannot be read: those must fail, and not as a *PrerequisiteError.
func TestCheckPrerequisitesBadRecords(t *testing.T) {
	badConstraint := hotfix(t, "KB910618", 2, ">= 6.5.7638")
	badConstraint.Requires.ProductVersion = ">= six"
	badKind := hotfix(t, "KB910618", 2, ">= 6.5.7638")
	badKind.Kind = "patch"
	garbled := &rootHas{Name: "relayfix", Version: "six", ServicePack: 2}

	tests := []struct {
		name      string
		m         *manifest.Manifest
		installed *rootHas
		want      string
	}{
		{"no manifest", nil, garbled, "no manifest"},
		{"installed version unreadable by hotfix", hotfix(t, "KB910618", 2, ">= 6.5.7638"), garbled, `installed product version "six"`},
		{"installed version unreadable by service pack", servicePack(t, "SP3", 3, "6.5.7800"), garbled, `installed product version "six"`},
		{"constraint unreadable", badConstraint, &rootHas{Name: "relayfix", Version: "6.5.7638", ServicePack: 2}, `product version constraint ">= six"`},
		{"unknown kind", badKind, &rootHas{Name: "relayfix", Version: "6.5.7638", ServicePack: 2}, `unknown package kind "patch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.m, tt.installed)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckPrerequisites = %v, want an error containing %q", err, tt.want)
			}
			var pe *PrerequisiteError
			if errors.As(err, &pe) {
				t.Errorf("got a *PrerequisiteError for unreadable records: %v", err)
			}
		})
	}
}
