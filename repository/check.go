package repository

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest"
	"relayfix/packages/installdb"
	"relayfix/relay/crashlog"
	"relayfix/verifier"
)

// State is what a package is to one root.
type State string

// The states Check reports.
const (
	StateInstalled     State = "installed"
	StateApplicable    State = "applicable"
	StateNotApplicable State = "not applicable"
	StateSuperseded    State = "superseded"
)

// Verdict is what one available package is to the root.
type Verdict struct {
	ID     string        `json:"id"`
	Title  string        `json:"title"`
	Kind   manifest.Kind `json:"kind"`
	Source string        `json:"source"`
	State  State         `json:"state"`
	// Reason says why a package is not applicable, in the words of the prerequisite check:
	// "requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 1 (...)".
	Reason       string `json:"reason,omitempty"`
	SupersededBy string `json:"superseded_by,omitempty"`
	// Fixes are the known problems seen on this host that the package fixes.
	Fixes []Problem `json:"fixes,omitempty"`
}

// Problem is a crash seen on this host that a package in a repository declares it fixes.
type Problem struct {
	crashlog.Record
	Summary string `json:"summary"` // the fixing package's one-line description of it
	FixedBy string `json:"fixed_by"`
	// Advice says what to do: "hotfix apply KB910618", or what must come first.
	Advice string `json:"advice"`
}

// Line gives the problem as hotfix check prints it:
//
//	msgtrack 6.5.7638.1 crashed 14 times since 13:02 UTC (nil pointer dereference in
//	relayfix/relay/trackplugin.recordsFor): KB910618 fixes this — hotfix apply KB910618
func (p Problem) Line(now time.Time) string {
	since := p.First.UTC().Format("15:04")
	if y, m, d := p.First.UTC().Date(); !(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Equal(now.UTC().Truncate(24 * time.Hour))) {
		since = p.First.UTC().Format("2006-01-02 15:04")
	}
	times := "times"
	if p.Count == 1 {
		times = "time"
	}
	return fmt.Sprintf("%s %s crashed %d %s since %s UTC (%s): %s fixes this — %s",
		p.Program, p.Build, p.Count, times, since, p.Signature, p.FixedBy, p.Advice)
}

// Report is what hotfix check finds for a root.
type Report struct {
	Product  string    `json:"product"` // e.g. "service pack 2 (relayfix 6.5.7638)"
	Packages []Verdict `json:"packages"`
	Problems []Problem `json:"problems"`
}

// Check refreshes every source and evaluates what they offer against root. The only thing it
// writes is the sources' TUF metadata under ROOT/hotfix/sources.
func Check(ctx context.Context, c *Client) (*Report, error) {
	cat, err := c.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	return Evaluate(c.Root, cat)
}

// Evaluate reads root's product, installed packages and crash records, and says, for each package
// in cat, whether it is installed, applicable, not applicable (and why) or superseded (and by
// what), and which of the crashes seen here it fixes.
func Evaluate(root layout.Root, cat *Catalog) (*Report, error) {
	prod, err := installdb.LoadProduct(root)
	if err != nil {
		return nil, err
	}
	db, err := installdb.Load(root)
	if err != nil {
		return nil, err
	}
	crashes, err := crashlog.Load(crashlog.Path(root))
	if err != nil {
		return nil, err
	}
	return evaluate(prod, db.Packages, cat, crashes), nil
}

func evaluate(prod *installdb.Product, pkgs []installdb.InstalledPackage, cat *Catalog, crashes []crashlog.Record) *Report {
	rep := &Report{Product: describeRoot(prod), Packages: []Verdict{}, Problems: []Problem{}}
	for _, a := range cat.Packages {
		v := Verdict{ID: a.ID, Title: a.Title, Kind: a.Kind, Source: a.Source, State: StateApplicable}
		err := verifier.CheckPrerequisites(a.Manifest(), prod, pkgs)
		var pe *verifier.PrerequisiteError
		switch {
		case err == nil:
		case errors.As(err, &pe) && pe.Unmet == verifier.UnmetInstalled:
			v.State = StateInstalled
		case errors.As(err, &pe) && pe.Unmet == verifier.UnmetSuperseded:
			v.State, v.SupersededBy = StateSuperseded, pe.By
		default:
			v.State, v.Reason = StateNotApplicable, strings.TrimPrefix(err.Error(), a.ID+" ")
		}
		rep.Packages = append(rep.Packages, v)
	}
	// A package that an applicable one replaces is superseded too: apply the newer one.
	for i, v := range rep.Packages {
		if v.State != StateApplicable {
			continue
		}
		for j, w := range rep.Packages {
			if j != i && w.State == StateApplicable && slices.ContainsFunc(cat.Packages[j].Supersedes, func(s string) bool { return strings.EqualFold(s, v.ID) }) {
				rep.Packages[i].State, rep.Packages[i].SupersededBy = StateSuperseded, w.ID+" (available)"
			}
		}
	}
	for i, a := range cat.Packages {
		v := &rep.Packages[i]
		if v.State == StateInstalled {
			continue // its fix is in place; crashes of the old build are history
		}
		for _, fix := range a.Fixes {
			for _, r := range crashes {
				if !matches(fix, r) {
					continue
				}
				r.Program = cmp.Or(r.Program, r.Component)
				p := Problem{Record: r, Summary: fix.Summary, FixedBy: a.ID, Advice: advice(*v)}
				v.Fixes = append(v.Fixes, p)
				rep.Problems = append(rep.Problems, p)
			}
		}
	}
	slices.SortStableFunc(rep.Packages, func(a, b Verdict) int { return strings.Compare(a.ID, b.ID) })
	return rep
}

// matches reports whether a crash record is the known problem fix describes: same component,
// same signature, and a build in the affected range. The signature is the manifest's: nothing
// here knows what any crash means.
func matches(fix manifest.Fix, r crashlog.Record) bool {
	if fix.Component != r.Component || fix.Signature != r.Signature {
		return false
	}
	c, err := manifest.ParseVersionConstraint(fix.Affected)
	if err != nil {
		return false
	}
	v, err := manifest.ParseFileVersion(r.Build)
	return err == nil && c.Check(v)
}

func advice(v Verdict) string {
	switch v.State {
	case StateApplicable:
		return "hotfix apply " + v.ID
	case StateSuperseded:
		by, _, _ := strings.Cut(v.SupersededBy, " ")
		return "it is superseded by " + v.SupersededBy + ": hotfix apply " + by
	}
	return "it " + v.Reason
}

func describeRoot(p *installdb.Product) string {
	if p == nil || p.Name == "" {
		return "nothing installed"
	}
	return fmt.Sprintf("service pack %d (%s %s)", p.ServicePack, p.Name, p.Version)
}
