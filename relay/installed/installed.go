// Package installed reads, for relayd's read-only views (the status page and the metrics), what
// hotfix has installed on a root: the product level (ROOT/product.json), the installed-files
// database (ROOT/hotfix/installed.json) and the transaction history (ROOT/hotfix/history.jsonl).
//
// It decodes only the fields those views show, with its own small types, instead of importing
// the packages that write the files: those carry the updater's archive, signature and
// self-update code, which the relay has no use for. The views depend on the Reader interface,
// so another source of the same facts can replace FromRoot without touching them.
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
)

// Product is the product level of a root. The zero value means nothing is installed.
type Product struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	ServicePack int      `json:"service_pack"`
	Packages    []string `json:"packages"`
}

// File is one installed file, in the columns a KB article's file table has, plus the package
// that installed it.
type File struct {
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Component string    `json:"component"`
	Version   string    `json:"version"`
	Size      int64     `json:"size"`
	Date      time.Time `json:"date"`
	Platform  string    `json:"platform"`
	Package   string    `json:"package"`
	Installed time.Time `json:"installed"`
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
	if err := readJSON(r.root.Product(), &s.Product); err != nil {
		return Snapshot{}, err
	}
	var db struct {
		Files []File `json:"files"`
	}
	if err := readJSON(r.root.InstalledDB(), &db); err != nil {
		return Snapshot{}, err
	}
	s.Files = db.Files
	h, err := readHistory(r.root.History())
	if err != nil {
		return Snapshot{}, err
	}
	s.History = h
	return s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
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
