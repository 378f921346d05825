package crashlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
)

// maxRecords bounds the file: past it, the record seen least recently is dropped.
const maxRecords = 200

// Record is one signature seen from one build of one component.
type Record struct {
	Component string    `json:"component"` // e.g. tracking
	Program   string    `json:"program"`   // file name of the build, e.g. msgtrack
	Build     string    `json:"build"`     // four-part file version it reported, or "" if unknown
	Signature string    `json:"signature"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// Crash is one crash to record.
type Crash struct {
	Component, Program, Build string
	Signature                 Signature
}

// Path returns where an install root keeps its crash records.
func Path(root layout.Root) string { return filepath.Join(root.Spool(), "tracking", "crashes.json") }

// Store is the crash record file of one relay. Its methods are safe for concurrent use.
type Store struct {
	path string

	mu      sync.Mutex
	records []Record
	loaded  bool
}

// Open returns the store at path; the file is read on first use.
func Open(path string) *Store { return &Store{path: path} }

// Load reads the records at path; a missing file has none.
func Load(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read crash records: %w", err)
	}
	var rs []Record
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("crash records %s are corrupt: %w", path, err)
	}
	return rs, nil
}

func (s *Store) load() error {
	if s.loaded {
		return nil
	}
	rs, err := Load(s.path)
	if err != nil {
		return err
	}
	s.records, s.loaded = rs, true
	return nil
}

// Record counts one crash at time at, and writes the records durably before it returns.
func (s *Store) Record(c Crash, at time.Time) error {
	at = at.UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		// A corrupt file must not stop crashes from being counted: start again, keeping the
		// damaged file aside for whoever wants to look.
		os.Rename(s.path, s.path+".corrupt")
		s.records, s.loaded = nil, true
	}
	sig := c.Signature.String()
	i := slices.IndexFunc(s.records, func(r Record) bool {
		return r.Component == c.Component && r.Build == c.Build && r.Signature == sig
	})
	if i < 0 {
		s.records = append(s.records, Record{Component: c.Component, Program: c.Program, Build: c.Build, Signature: sig, First: at})
		i = len(s.records) - 1
	}
	r := &s.records[i]
	r.Count++
	r.Last = at
	if c.Program != "" {
		r.Program = c.Program
	}
	if len(s.records) > maxRecords {
		slices.SortStableFunc(s.records, func(a, b Record) int { return b.Last.Compare(a.Last) })
		s.records = s.records[:maxRecords]
	}
	b, err := json.MarshalIndent(s.records, "", "  ")
	if err != nil {
		return err
	}
	// Crash records sit with the tracking journal in the spool: owner only.
	if err := safefile.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("record crash: %w", err)
	}
	if err := safefile.WriteFile(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record crash: %w", err)
	}
	return nil
}

// Records returns a copy of the records, oldest first seen first.
func (s *Store) Records() ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return nil, err
	}
	out := slices.Clone(s.records)
	slices.SortStableFunc(out, func(a, b Record) int { return a.First.Compare(b.First) })
	return out, nil
}
