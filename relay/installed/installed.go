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

// Snapshot is what is installed on a root at one moment.
type Snapshot struct {
	Product Product
	Files   []File
	History []Transaction // oldest first
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
// nothing (running is empty) or has no installed file is not pending.
func (s Snapshot) RestartPending(component, running string) bool {
	f, ok := s.File(component)
	return ok && running != "" && f.Version != "" && running != f.Version
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
	for _, f := range db.Files {
		s.Files = append(s.Files, File{
			Name: f.Name, Path: f.Path, Component: f.ComponentName(), Version: f.Version.String(), Size: f.Size,
			Date: f.Date, Platform: f.Platform, Package: f.Package, Installed: f.Installed,
		})
	}
	if s.History, err = readHistory(r.root.History()); err != nil {
		return Snapshot{}, err
	}
	return s, nil
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
