package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
	"relayfix/manifest"
)

// Store applies packages to an install root and rolls them back, one journaled transaction at a
// time. The zero value is not usable: Root is required.
type Store struct {
	Root layout.Root
	// Services restarts components of the running relay; nil means there is no relay to talk to.
	Services Services
	// HealthTimeout bounds the wait for a restarted service to report the new build healthy
	// (15 s when zero).
	HealthTimeout time.Duration
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
	// Hook, when set, is called at every step boundary of a transaction, right after the step was
	// journaled, with the step's name (see Steps). It exists so that tests can kill the process
	// at each boundary and prove that recovery handles it.
	Hook func(step string)
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) hook(step string) {
	if s.Hook != nil {
		s.Hook(step)
	}
}

// Staged is a verified package whose payload sits in a staging directory.
type Staged struct {
	Manifest *manifest.Manifest
	Files    map[string]string // install path → staged file
	// KeyFiles are the public key files the package was verified with when they were given for
	// this package rather than taken from the root (hotfix apply --pubkey). Once the package is
	// committed, a root that trusts no key yet trusts these from then on (see TrustKeys).
	KeyFiles []string
}

// OpenFunc verifies a package and extracts its payload into stageDir; with an empty stageDir it
// only verifies. Nothing in stageDir may be trusted unless it returns without error.
type OpenFunc func(ctx context.Context, stageDir string) (*Staged, error)

// FileChange is one file a transaction changes.
type FileChange struct {
	Name string `json:"name"`
	Path string `json:"path"`
	From string `json:"from,omitempty"` // version before ("" when the file is new)
	To   string `json:"to"`
}

// Result says what a transaction did.
type Result struct {
	TxID     string          `json:"tx"`
	Action   string          `json:"action"`
	Package  string          `json:"package"`
	Title    string          `json:"title,omitempty"`
	State    State           `json:"state"`
	Files    []FileChange    `json:"files"`
	Services []ServiceResult `json:"services,omitempty"`
	Reboot   bool            `json:"reboot"`
	Error    string          `json:"error,omitempty"`
	// TrustedKeys are the key files the root trusts from now on because this package was
	// applied with them (see Staged.KeyFiles); TrustErr says why trusting them failed, which
	// does not undo the transaction.
	TrustedKeys []string `json:"-"`
	TrustErr    error    `json:"-"`
}

// Plan is what a dry run reports.
type Plan struct {
	Package       string       `json:"package"`
	Title         string       `json:"title"`
	Kind          string       `json:"kind"`
	Prerequisites string       `json:"prerequisites"` // "met" or why not
	Ready         bool         `json:"ready"`
	Files         []FileChange `json:"files"`
	Services      []string     `json:"services"`
	Reboot        bool         `json:"reboot"`
}

func newTxID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// rel returns p relative to the root, slash-separated.
func (s *Store) rel(p string) string {
	r, err := filepath.Rel(string(s.Root), p)
	if err != nil {
		return filepath.ToSlash(p)
	}
	return filepath.ToSlash(r)
}

// makeFolders creates the root's folders. A service pack calls it before anything is installed.
func (s *Store) makeFolders() error {
	for _, d := range []string{s.Root.Join("bin"), s.Root.Spool(), s.Root.TrackingLog(), s.Root.Run(),
		s.Root.Hotfix(), s.Root.Backups(), s.Root.Staging(), s.Root.Trusted()} {
		if err := safefile.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create root folders: %w", err)
		}
	}
	if err := os.Chmod(s.Root.Run(), 0o700); err != nil {
		return fmt.Errorf("create root folders: %w", err)
	}
	return nil
}

// save journals state durably.
func (s *Store) save(j *Journal, st State) error {
	j.State = st
	j.Updated = s.now()
	if err := safefile.WriteJSON(s.Root.Journal(), j, 0o644); err != nil {
		return fmt.Errorf("journal %s: %w", st, err)
	}
	return nil
}

func (s *Store) record(e HistoryEntry) {
	// The history is a log for people; failing to write it must not undo a transaction.
	appendHistory(s.Root, e)
}
