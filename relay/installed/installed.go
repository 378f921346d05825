// Package installed reads, for relayd's read-only views (the status page and the metrics), what
// hotfix has installed on a root: the product level (ROOT/product.json), the installed-files
// database (ROOT/hotfix/installed.json) and the transaction history (ROOT/hotfix/history.jsonl).
//
// The product file and the installed-files database are read through packages/installdb, the
// one package that owns their format and links none of the updater's archive, signature and
// self-update code. The history is decoded here, with a small type of its own, because its owner
// is the install store, which relayd must not link. The views depend on the Reader interface and
// on this package's plain types, so they need no change when those sources move.
package installed

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"relayfix/internal/layout"
	"relayfix/packages/installdb"
)

// Product is the product level of a root. The zero value means nothing is installed.
type Product = installdb.Product

// File is one installed file, in the columns a KB article's file table has, plus the package
// that installed it.
type File struct {
	Name      string
	Path      string
	Component string
	Version   string // four-part file version
	Size      int64
	Date      time.Time // UTC
	Platform  string
	Package   string
	Installed time.Time
}

// ComponentName returns the component the file belongs to: its component, else its name.
func (f File) ComponentName() string {
	if f.Component != "" {
		return f.Component
	}
	return f.Name
}

// Transaction is one entry of the hotfix history.
type Transaction struct {
	ID      string    `json:"id"`
	Package string    `json:"package"`
	Action  string    `json:"action"`
	Result  string    `json:"result"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Fix is a package a configured repository offers that declares it fixes a crash.
type Fix struct {
	Package   string // e.g. KB910618
	Title     string
	Source    string // the repository's URL
	Component string // e.g. tracking
	Signature string // the crash signature it fixes
	Summary   string
	Installed bool // the package is installed on this root
}

// Snapshot is what is installed on a root at one moment.
type Snapshot struct {
	Product Product
	Files   []File
	History []Transaction // oldest first
	// Fixes are what the configured repositories offer against known crashes, as their metadata
	// stood when hotfix last verified it (hotfix check, apply by id).
	Fixes []Fix

	root layout.Root
	db   *installdb.DB
}

// FixFor returns a package that fixes crashes of component with signature, preferring one that
// is not installed yet (the news an operator needs).
func (s Snapshot) FixFor(component, signature string) (Fix, bool) {
	var found Fix
	ok := false
	for _, f := range s.Fixes {
		if f.Component == component && f.Signature == signature && (!ok || found.Installed && !f.Installed) {
			found, ok = f, true
		}
	}
	return found, ok
}

// File returns the installed file of component, if there is one.
func (s Snapshot) File(component string) (File, bool) {
	for _, f := range s.Files {
		if f.ComponentName() == component {
			return f, true
		}
	}
	return File{}, false
}

// RestartPending reports whether component runs another build than the file installed for it:
// hotfix swapped the file and the component has not been restarted since. A component that runs
// nothing (running is empty) or has no installed file is not pending. The comparison is the
// installed-files database's own, the one hotfix list and hotfix apply make.
func (s Snapshot) RestartPending(component, running string) bool {
	if s.db == nil {
		return false
	}
	return len(s.db.RestartPending(s.root, []installdb.Running{{Name: component, Version: running}})) > 0
}

// Reader reads a Snapshot.
type Reader interface {
	Read() (Snapshot, error)
}

// FromRoot reads the files of root. A root where nothing was installed yields an empty snapshot.
func FromRoot(root layout.Root) Reader { return rootReader{root} }

type rootReader struct{ root layout.Root }

func (r rootReader) Read() (Snapshot, error) {
	var s Snapshot
	p, err := installdb.LoadProduct(r.root)
	if err != nil {
		return Snapshot{}, err
	}
	if p != nil {
		s.Product = *p
	}
	db, err := installdb.Load(r.root)
	if err != nil {
		return Snapshot{}, err
	}
	s.root, s.db = r.root, db
	for _, f := range db.Files {
		s.Files = append(s.Files, File{
			Name: f.Name, Path: f.Path, Component: f.ComponentName(), Version: f.Version.String(), Size: f.Size,
			Date: f.Date, Platform: f.Platform, Package: f.Package, Installed: f.Installed,
		})
	}
	if s.History, err = readHistory(r.root.History()); err != nil {
		return Snapshot{}, err
	}
	if s.Fixes, err = readFixes(r.root, s.Product.Packages); err != nil {
		return Snapshot{}, err
	}
	return s, nil
}

// readFixes reads the fixes the repositories declare from the targets metadata hotfix keeps for
// each source (ROOT/hotfix/sources/sources.json lists them; DIR/metadata/targets.json is the
// targets role as hotfix last verified it). relayd does not verify signatures itself: it shows
// what hotfix trusted, and hotfix verifies again before it applies anything.
func readFixes(root layout.Root, installed []string) ([]Fix, error) {
	var sources []struct {
		URL string `json:"url"`
		Dir string `json:"dir"`
	}
	b, err := os.ReadFile(filepath.Join(root.Sources(), "sources.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read repository sources: %w", err)
	}
	if err := json.Unmarshal(b, &sources); err != nil {
		return nil, fmt.Errorf("repository sources: %w", err)
	}
	var out []Fix
	for _, src := range sources {
		path := filepath.Join(root.Sources(), filepath.Base(src.Dir), "metadata", "targets.json")
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // added, never refreshed
		}
		if err != nil {
			return nil, fmt.Errorf("read repository metadata: %w", err)
		}
		var md struct {
			Signed struct {
				Targets map[string]struct {
					Custom struct {
						Relayfix struct {
							ID    string `json:"id"`
							Title string `json:"title"`
							Fixes []struct {
								Component string `json:"component"`
								Signature string `json:"signature"`
								Summary   string `json:"summary"`
							} `json:"fixes"`
						} `json:"relayfix"`
					} `json:"custom"`
				} `json:"targets"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(b, &md); err != nil {
			return nil, fmt.Errorf("repository metadata %s: %w", path, err)
		}
		for _, t := range md.Signed.Targets {
			e := t.Custom.Relayfix
			for _, f := range e.Fixes {
				out = append(out, Fix{Package: e.ID, Title: e.Title, Source: src.URL, Component: f.Component,
					Signature: f.Signature, Summary: f.Summary, Installed: slices.Contains(installed, e.ID)})
			}
		}
	}
	slices.SortFunc(out, func(a, b Fix) int { return strings.Compare(a.Package+a.Signature, b.Package+b.Signature) })
	return out, nil
}

// readHistory reads the history, skipping a line torn by a crash (hotfix appends one JSON object
// a line and fsyncs each).
func readHistory(path string) ([]Transaction, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	var out []Transaction
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var t Transaction
		if json.Unmarshal(sc.Bytes(), &t) == nil && t.ID != "" {
			out = append(out, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
