package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Recovery outcomes.
const (
	RecoveredNothing  = "nothing to recover"
	RecoveredFinished = "finished"
	RecoveredUndone   = "undone"
)

// RecoverReport says what recovery found and did.
type RecoverReport struct {
	TxID    string `json:"tx,omitempty"`
	Package string `json:"package,omitempty"`
	Action  string `json:"action,omitempty"` // the interrupted transaction's action
	State   State  `json:"state,omitempty"`  // where it stopped
	Outcome string `json:"outcome"`          // nothing to recover, finished, undone
	Detail  string `json:"detail,omitempty"`
}

// Recover finishes or undoes a transaction that was interrupted (by a crash, a kill or a power
// loss), following the rules documented on State, and says what it did. When recovery fails it
// returns no report, only the error: the transaction is still open, and nothing was recovered.
func (s *Store) Recover(ctx context.Context) (*RecoverReport, error) {
	if err := CheckRoot(s.Root); err != nil {
		return nil, err
	}
	lock, err := AcquireLock(s.Root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return s.recoverLocked(ctx)
}

func (s *Store) recoverLocked(ctx context.Context) (*RecoverReport, error) {
	j, err := LoadJournal(s.Root)
	if err != nil {
		return nil, err
	}
	rep := &RecoverReport{Outcome: RecoveredNothing}
	if j != nil && !j.Finished() {
		rep.TxID, rep.Package, rep.Action, rep.State = j.ID, j.Package, j.Action, j.State
		if j.afterHealthy() {
			if err := s.finish(j, fmt.Sprintf("finished after an interruption at %q", rep.State)); err != nil {
				return nil, fmt.Errorf("recover transaction %s: finish %s of %s: %w", j.ID, j.Action, j.Package, err)
			}
			rep.Outcome = RecoveredFinished
			rep.Detail = fmt.Sprintf("the %s of %s had been seen healthy; recorded it as committed", j.Action, j.Package)
		} else {
			if err := s.undo(ctx, j, nil); err != nil {
				return nil, fmt.Errorf("recover transaction %s: undo %s of %s: %w", j.ID, j.Action, j.Package, err)
			}
			rep.Outcome = RecoveredUndone
			rep.Detail = fmt.Sprintf("the %s of %s stopped at %q before its build was seen healthy; put the previous build back", j.Action, j.Package, rep.State)
		}
	}
	s.removeOrphans(j)
	return rep, nil
}

// removeOrphans deletes staging areas that no unfinished transaction owns (left by a crash while
// a package was being opened, before anything was journaled).
func (s *Store) removeOrphans(j *Journal) {
	keep := ""
	if j != nil && !j.Finished() {
		keep = j.Staging
	}
	ents, err := os.ReadDir(s.Root.Staging())
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(s.Root.Staging(), e.Name())
		if s.rel(p) != keep {
			os.RemoveAll(p)
		}
	}
}
