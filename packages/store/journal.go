package store

import (
	"io/fs"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
	"relayfix/packages/installdb"
)

// State is a step of a transaction. The journal records each state durably before the step it
// names is taken, so that after a crash the next command knows how far the transaction got.
//
//	verified → staged → backed-up → swapping(i) → swapped → restarting → healthy → committed
//	                                          any of these ↘ rolling-back → rolled-back
//
// Right after "swapped" the new installed-files database is written, so that the relay, which
// runs only builds the database lists, accepts the new build when it restarts it.
//
// Recovery rules (see Recover): a transaction that stopped before "healthy" is undone — its files
// are restored from the backup (or removed if they were new) and the services restarted on the
// old build; one that stopped at "healthy" or later is finished — the database, product and
// history are written. Undoing everything up to "restarting" is the safe choice: until the new
// build has been seen healthy, the old one is the only build known to work.
type State string

// Transaction states.
const (
	StateVerified    State = "verified"  // package signature and file table verified, checks passed, plan fixed
	StateStaged      State = "staged"    // payload synced in the staging area and re-checked
	StateBackedUp    State = "backed-up" // every file about to be replaced copied to the backup, hashed
	StateSwapping    State = "swapping"  // file Journal.Swapping is being swapped in
	StateSwapped     State = "swapped"   // every file swapped in
	StateRestarting  State = "restarting"
	StateHealthy     State = "healthy" // the services report the new build, healthy
	StateCommitted   State = "committed"
	StateRollingBack State = "rolling-back"
	StateRolledBack  State = "rolled-back"
)

// Transaction actions.
const (
	ActionApply    = "apply"
	ActionRollback = "rollback"
	ActionRecover  = "recover"
)

// Journal is ROOT/hotfix/journal.json: one transaction in flight, or the last one finished.
type Journal struct {
	ID       string    `json:"id"`
	Action   string    `json:"action"` // apply or rollback
	Package  string    `json:"package"`
	PID      int       `json:"pid"`
	State    State     `json:"state"`
	Swapping int       `json:"swapping"` // index into Files while State is swapping
	Files    []TxFile  `json:"files"`
	Services []string  `json:"services,omitempty"`
	Staging  string    `json:"staging,omitempty"` // relative to the root
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Error    string    `json:"error,omitempty"` // why it was rolled back

	// DB and Product are what the root records once the transaction commits. They are computed
	// before the first file is touched, so finishing after a crash is a plain rewrite. The new
	// database is written as soon as every file is swapped, before any service restarts, because
	// the relay starts only a build that the database lists; OldDB is what undo writes back.
	DB      *installdb.DB      `json:"db"`
	OldDB   *installdb.DB      `json:"old_db"`
	Product *installdb.Product `json:"product,omitempty"`
}

// TxFile is one file a transaction replaces.
type TxFile struct {
	Path   string                  `json:"path"`   // install path, relative to the root
	Source string                  `json:"source"` // the new content: staged file (apply) or backup (rollback), relative to the root
	New    installdb.InstalledFile `json:"new"`

	OldExisted bool        `json:"old_existed"`
	OldSHA256  string      `json:"old_sha256,omitempty"`
	OldVersion string      `json:"old_version,omitempty"`
	OldMode    fs.FileMode `json:"old_mode,omitempty"`
	OldMtime   time.Time   `json:"old_mtime,omitempty"`
	Backup     string      `json:"backup,omitempty"`   // verified copy of the old file, relative to the root
	OldSave    string      `json:"old_save,omitempty"` // where selfupdate moves the old file, relative to the root
}

// LoadJournal reads the journal; nil when there is none.
func LoadJournal(root layout.Root) (*Journal, error) {
	var j Journal
	if found, err := safefile.ReadJSON(root.Journal(), "journal", &j); !found {
		return nil, err
	}
	return &j, nil
}

// Finished reports whether the transaction needs nothing more.
func (j *Journal) Finished() bool {
	return j.State == StateCommitted || j.State == StateRolledBack
}

// afterHealthy reports whether the new build was seen healthy, so recovery finishes the
// transaction instead of undoing it.
func (j *Journal) afterHealthy() bool {
	return j.State == StateHealthy || j.State == StateCommitted
}

// touched reports whether file i may have been changed on disk.
func (j *Journal) touched(i int) bool {
	switch j.State {
	case StateVerified, StateStaged, StateBackedUp:
		return false
	case StateSwapping:
		return i <= j.Swapping
	}
	return true
}
