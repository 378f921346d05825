package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"relayfix/internal/safefile"
	"relayfix/packages/installdb"
)

// execute takes a journaled "verified" transaction to committed, or undoes it.
func (s *Store) execute(ctx context.Context, j *Journal) (*Result, error) {
	s.hook(string(StateVerified))
	res := &Result{TxID: j.ID, Action: j.Action, Package: j.Package}
	for _, f := range j.Files {
		res.Files = append(res.Files, FileChange{Name: f.New.Name, Path: f.Path, From: f.OldVersion, To: f.New.Version.String()})
	}
	fail := func(err error) (*Result, error) {
		uerr := s.undo(ctx, j, err)
		res.State = j.State
		res.Error = err.Error()
		if uerr != nil {
			return res, fmt.Errorf("%s: %w; undoing it failed too: %v", j.Package, err, uerr)
		}
		return res, fmt.Errorf("%s: %w; the previous build was put back", j.Package, err)
	}

	// staged: the payload is synced and re-checked against the verified file table, so nothing
	// after this trusts the disk without a hash.
	for _, f := range j.Files {
		src := s.Root.Join(f.Source)
		sum, _, err := hashFile(src)
		if err != nil {
			return fail(fmt.Errorf("staged %s: %w", f.Path, err))
		}
		if sum != f.New.SHA256 {
			return fail(fmt.Errorf("staged %s: SHA-256 %s, the file table says %s", f.Path, sum, f.New.SHA256))
		}
		if err := syncFile(src); err != nil {
			return fail(err)
		}
	}
	if err := s.save(j, StateStaged); err != nil {
		return fail(err)
	}
	s.hook(string(StateStaged))

	for _, f := range j.Files {
		if !f.OldExisted {
			continue
		}
		sum, err := copyDurable(s.Root.Join(f.Path), s.Root.Join(f.Backup), f.OldMode, f.OldMtime)
		if err != nil {
			return fail(fmt.Errorf("back up %s: %w", f.Path, err))
		}
		if sum != f.OldSHA256 {
			return fail(fmt.Errorf("back up %s: the file changed while it was copied", f.Path))
		}
	}
	if err := s.save(j, StateBackedUp); err != nil {
		return fail(err)
	}
	s.hook(string(StateBackedUp))
	// An interrupt (Ctrl-C, SIGTERM) stops the transaction here at the latest, before any file
	// changes; later it would leave a half-switched relay, so from here on it runs to the end or
	// back.
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	ctx = context.WithoutCancel(ctx)

	for i, f := range j.Files {
		j.Swapping = i
		if err := s.save(j, StateSwapping); err != nil {
			return fail(err)
		}
		s.hook(swappingStep(i))
		if err := s.swapIn(f, i); err != nil {
			return fail(err)
		}
	}
	if err := s.save(j, StateSwapped); err != nil {
		return fail(err)
	}
	s.hook(string(StateSwapped))
	if err := installdb.Save(s.Root, j.DB); err != nil {
		return fail(err)
	}

	if err := s.save(j, StateRestarting); err != nil {
		return fail(err)
	}
	s.hook(string(StateRestarting))
	svc, err := s.restartServices(ctx, j.Services, j.Files, true)
	res.Services = svc
	if err != nil {
		return fail(err)
	}
	if err := s.save(j, StateHealthy); err != nil {
		return fail(err)
	}
	s.hook(string(StateHealthy))
	if err := s.finish(j, ""); err != nil {
		res.State = j.State
		return res, err
	}
	res.State = j.State
	return res, nil
}

// swapIn puts file i's new content in place.
func (s *Store) swapIn(f TxFile, i int) error {
	target := s.Root.Join(f.Path)
	mode := fs.FileMode(f.New.Mode)
	if mode == 0 {
		mode = 0o755
	}
	if !f.OldExisted {
		// selfupdate needs an existing target; a new file goes in by temp, sync, rename.
		s.hook(preparedStep(i))
		sum, err := copyDurable(s.Root.Join(f.Source), target, mode, f.New.Date)
		if err != nil {
			return fmt.Errorf("install %s: %w", f.Path, err)
		}
		if sum != f.New.SHA256 {
			return fmt.Errorf("install %s: SHA-256 %s, the file table says %s", f.Path, sum, f.New.SHA256)
		}
		return nil
	}
	return swapBinary(s.Root.Join(f.Source), target, s.Root.Join(f.OldSave), f.New.SHA256, mode, f.New.Date,
		func() { s.hook(preparedStep(i)) })
}

// finish records a transaction whose new build was seen healthy: database, product, history,
// then the journal's committed state. Each write replaces a whole file, so finishing twice is
// harmless.
func (s *Store) finish(j *Journal, detail string) error {
	if err := installdb.Save(s.Root, j.DB); err != nil {
		return err
	}
	if j.Product != nil && j.Product.Name != "" {
		if err := installdb.SaveProduct(s.Root, j.Product); err != nil {
			return err
		}
	}
	action := j.Action
	if detail != "" {
		action = ActionRecover
	}
	s.record(HistoryEntry{ID: j.ID, Package: j.Package, Action: action, Result: ResultCommitted, Start: j.Started, End: s.now(), Detail: detail})
	if err := s.save(j, StateCommitted); err != nil {
		return err
	}
	s.hook(string(StateCommitted))
	s.cleanup(j)
	return nil
}

// cleanup removes what a finished transaction no longer needs: its staging area, the files
// selfupdate moved aside, and every backup that no earlier build in the database refers to (the
// backups rollback may still need stay).
func (s *Store) cleanup(j *Journal) {
	if j.Staging != "" {
		os.RemoveAll(s.Root.Join(j.Staging))
	}
	for _, f := range j.Files {
		if f.OldSave != "" {
			os.Remove(s.Root.Join(f.OldSave))
		}
		os.Remove(newPath(s.Root.Join(f.Path)))
	}
	db := j.DB
	if j.State != StateCommitted {
		db = j.OldDB
	}
	if db != nil {
		s.pruneBackups(db)
	}
}

// pruneBackups removes the backup folders of transactions that no row of db refers to.
func (s *Store) pruneBackups(db *installdb.DB) {
	keep := map[string]bool{}
	for _, f := range db.Files {
		for _, p := range f.Previous {
			// hotfix/backup/<tx>/<install path>
			if parts := strings.SplitN(p.Backup, "/", 4); len(parts) == 4 {
				keep[parts[2]] = true
			}
		}
	}
	ents, err := os.ReadDir(s.Root.Backups())
	if err != nil {
		return
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			os.RemoveAll(filepath.Join(s.Root.Backups(), e.Name()))
		}
	}
}

// undo puts back the old build of every file the transaction may have touched and, if services
// may have been restarted on the new one, restarts them on the old one.
func (s *Store) undo(ctx context.Context, j *Journal, cause error) error {
	// Undo runs even when the caller was interrupted: stopping half way back is the one outcome
	// worse than either build.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.healthTimeout()+30*time.Second)
	defer cancel()
	wasRollingBack := j.State == StateRollingBack
	touched := make([]bool, len(j.Files))
	// Restart whenever a file may have changed: the relay restarts a crashed plugin from the
	// installed file on its own, so even a swap that never reached "restarting" may be running.
	restart := false
	for i := range j.Files {
		touched[i] = wasRollingBack || j.touched(i)
		restart = restart || touched[i]
	}
	if cause != nil && j.Error == "" {
		j.Error = cause.Error()
	}
	if err := s.save(j, StateRollingBack); err != nil {
		return err
	}
	s.hook(string(StateRollingBack))
	for i := len(j.Files) - 1; i >= 0; i-- {
		if !touched[i] {
			continue
		}
		if err := s.restore(j.Files[i]); err != nil {
			return err
		}
	}
	// The database may already list the new build (it is written at "swapped"); the relay must
	// find the old one listed again before it restarts it.
	if restart && j.OldDB != nil {
		if err := installdb.Save(s.Root, j.OldDB); err != nil {
			return err
		}
	}
	var errs []error
	if restart {
		if _, err := s.restartServices(ctx, j.Services, j.Files, false); err != nil {
			errs = append(errs, fmt.Errorf("restart on the previous build: %w", err))
		}
	}
	if err := s.save(j, StateRolledBack); err != nil {
		return err
	}
	s.hook(string(StateRolledBack))
	action := j.Action
	if cause == nil {
		action = ActionRecover
	}
	s.record(HistoryEntry{ID: j.ID, Package: j.Package, Action: action, Result: ResultRolledBack, Start: j.Started, End: s.now(), Error: j.Error})
	s.cleanup(j)
	return errors.Join(errs...)
}

// restore puts f's old content back (or removes f if it was new), from the verified backup.
func (s *Store) restore(f TxFile) error {
	target := s.Root.Join(f.Path)
	os.Remove(newPath(target))
	if !f.OldExisted {
		return safefile.Remove(target)
	}
	if sum, _, err := hashFile(target); err == nil && sum == f.OldSHA256 {
		return nil
	}
	backup := s.Root.Join(f.Backup)
	if sum, _, err := hashFile(backup); err != nil || sum != f.OldSHA256 {
		// The backup copy is not usable; selfupdate's moved-aside file is the same build.
		if sum2, _, err2 := hashFile(s.Root.Join(f.OldSave)); err2 == nil && sum2 == f.OldSHA256 {
			backup = s.Root.Join(f.OldSave)
		} else {
			return fmt.Errorf("restore %s: backup %s does not match its recorded SHA-256 %s", f.Path, f.Backup, f.OldSHA256)
		}
	}
	mode := f.OldMode
	if mode == 0 {
		mode = 0o755
	}
	sum, err := copyDurable(backup, target, mode, f.OldMtime)
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if sum != f.OldSHA256 {
		return fmt.Errorf("restore %s: wrote SHA-256 %s, want %s", f.Path, sum, f.OldSHA256)
	}
	return nil
}
