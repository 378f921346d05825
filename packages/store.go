package packages

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
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
	// journaled, with the step's name: verified, staged, backed-up, swapping:i, prepared:i (the
	// new file i is written and synced, not yet renamed in), swapped, restarting, restarted (the
	// relay switched to the new build, health not yet confirmed), healthy, committed, and on the
	// way back rolling-back and rolled-back. It exists so that tests can kill the process at each
	// boundary and prove that recovery handles it.
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

// Apply verifies the package through open, checks that it applies to the root, and installs it
// through the journaled states; on any failure after the first file was touched it puts the old
// build back, running. With dryRun it returns the plan and changes nothing.
func (s *Store) Apply(ctx context.Context, open OpenFunc, dryRun bool) (*Result, *Plan, error) {
	if dryRun {
		return s.dryRun(ctx, open)
	}
	lock, err := AcquireLock(s.Root)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Release()
	if _, err := s.recoverLocked(ctx); err != nil {
		return nil, nil, fmt.Errorf("finish the interrupted transaction first: %w", err)
	}
	start := s.now()
	id := newTxID(start)
	stage := filepath.Join(s.Root.Staging(), id)
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create staging area: %w", err)
	}
	staged, err := open(ctx, stage)
	if err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	m := staged.Manifest
	prod, db, err := s.installed()
	if err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	if err := checkApplicable(m, prod, db); err != nil {
		os.RemoveAll(stage)
		s.record(HistoryEntry{ID: id, Package: m.ID, Action: ActionApply, Result: ResultFailed, Start: start, End: s.now(), Error: err.Error()})
		return nil, nil, err
	}
	if m.Kind == manifest.KindServicePack {
		if err := s.makeFolders(); err != nil {
			os.RemoveAll(stage)
			return nil, nil, err
		}
	}
	j, err := s.planApply(id, start, m, staged, stage, prod, db)
	if err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	res, err := s.execute(ctx, j)
	if res != nil {
		res.Title = m.Title
		res.Reboot = false
	}
	return res, nil, err
}

// dryRun verifies the package without staging it and reports what Apply would do. It takes no
// lock and writes nothing, so it neither waits for nor disturbs a transaction in progress.
func (s *Store) dryRun(ctx context.Context, open OpenFunc) (*Result, *Plan, error) {
	staged, err := open(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	prod, db, err := s.installed()
	if err != nil {
		return nil, nil, err
	}
	checkErr := checkApplicable(staged.Manifest, prod, db)
	return nil, s.plan(staged.Manifest, db, checkErr), checkErr
}

// installed reads the product and the installed-files database.
func (s *Store) installed() (*Product, *DB, error) {
	prod, err := LoadProduct(s.Root)
	if err != nil {
		return nil, nil, err
	}
	db, err := LoadDB(s.Root)
	if err != nil {
		return nil, nil, err
	}
	return prod, db, nil
}

func (s *Store) plan(m *manifest.Manifest, db *DB, checkErr error) *Plan {
	p := &Plan{Package: m.ID, Title: m.Title, Kind: string(m.Kind), Prerequisites: "met", Ready: checkErr == nil,
		Services: m.Restart.Services, Reboot: false}
	if checkErr != nil {
		p.Prerequisites = checkErr.Error()
	}
	for _, f := range m.Files {
		fc := FileChange{Name: f.Name, Path: f.Path, To: f.Version.String()}
		if cur, ok := db.Lookup(f.Path); ok {
			fc.From = cur.Version.String()
		}
		p.Files = append(p.Files, fc)
	}
	return p
}

// planApply fixes everything the transaction will do and what the root will record, and journals
// it as "verified".
func (s *Store) planApply(id string, start time.Time, m *manifest.Manifest, staged *Staged, stage string, prod *Product, db *DB) (*Journal, error) {
	newDB := db.clone()
	if newDB.HighWater == nil {
		newDB.HighWater = map[string]manifest.FileVersion{}
	}
	j := &Journal{ID: id, Action: ActionApply, Package: m.ID, PID: os.Getpid(), Services: m.Restart.Services,
		Staging: s.rel(stage), Started: start}
	for _, f := range m.Files {
		src, ok := staged.Files[f.Path]
		if !ok {
			return nil, fmt.Errorf("%s: %s is in the file table but was not staged", m.ID, f.Path)
		}
		tf := TxFile{Path: f.Path, Source: s.rel(src),
			New: InstalledFile{File: f, Package: m.ID, Installed: start, TxID: id}}
		if err := s.planOld(&tf, id, db); err != nil {
			return nil, err
		}
		row := tf.New
		if cur, ok := db.Lookup(f.Path); ok {
			row.Previous = append([]PreviousBuild{{File: cur.File, Package: cur.Package, Installed: cur.Installed,
				TxID: cur.TxID, Backup: tf.Backup}}, cur.Previous...)
			if cur.Package == m.ID && cur.SHA256 == f.SHA256 {
				// A hotfix applied again to complete it after a component rollback: this file
				// stayed in place, and rolling the hotfix back must go past it in one step.
				row.Previous = cur.Previous
			}
		}
		newDB.put(row)
		if hw, ok := newDB.HighWater[f.Path]; !ok || f.Version.Compare(hw) > 0 {
			newDB.HighWater[f.Path] = f.Version
		}
		j.Files = append(j.Files, tf)
	}
	newDB.Packages = slices.DeleteFunc(newDB.Packages, func(p InstalledPackage) bool { return p.ID == m.ID })
	newDB.Packages = append(newDB.Packages, InstalledPackage{ID: m.ID, Title: m.Title, Kind: m.Kind, Released: m.Released,
		Installed: start, TxID: id, Services: m.Restart.Services, Supersedes: m.Supersedes})
	newProd := &Product{}
	if prod != nil {
		*newProd = *prod
		newProd.Packages = slices.Clone(prod.Packages)
	}
	if m.Kind == manifest.KindServicePack {
		newProd.Name = m.Product.Name
		newProd.Version = m.Product.Version
		newProd.ServicePack = m.Product.ServicePack
	}
	if !slices.Contains(newProd.Packages, m.ID) {
		newProd.Packages = append(newProd.Packages, m.ID)
	}
	j.DB, j.OldDB, j.Product = newDB, db, newProd
	if err := s.save(j, StateVerified); err != nil {
		return nil, err
	}
	return j, nil
}

// planOld records what is at tf.Path now and where its backup goes.
func (s *Store) planOld(tf *TxFile, id string, db *DB) error {
	target := s.Root.Join(tf.Path)
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", target, err)
	}
	sum, _, err := hashFile(target)
	if err != nil {
		return fmt.Errorf("hash installed %s: %w", tf.Path, err)
	}
	tf.OldExisted = true
	tf.OldSHA256 = sum
	tf.OldMode = fi.Mode().Perm()
	tf.OldMtime = fi.ModTime().UTC()
	if cur, ok := db.Lookup(tf.Path); ok {
		tf.OldVersion = cur.Version.String()
	}
	tf.Backup = path.Join("hotfix/backup", id, tf.Path)
	tf.OldSave = tf.Backup + ".old"
	return nil
}

// save journals state durably.
func (s *Store) save(j *Journal, st State) error {
	j.State = st
	j.Updated = s.now()
	if err := writeJSON(s.Root.Journal(), j); err != nil {
		return fmt.Errorf("journal %s: %w", st, err)
	}
	return nil
}

func (s *Store) record(e HistoryEntry) {
	// The history is a log for people; failing to write it must not undo a transaction.
	appendHistory(s.Root, e)
}

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
		s.hook(fmt.Sprintf("swapping:%d", i))
		if err := s.swapIn(f, i); err != nil {
			return fail(err)
		}
	}
	if err := s.save(j, StateSwapped); err != nil {
		return fail(err)
	}
	s.hook(string(StateSwapped))
	if err := saveDB(s.Root, j.DB); err != nil {
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
		s.hook(fmt.Sprintf("prepared:%d", i))
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
		func() { s.hook(fmt.Sprintf("prepared:%d", i)) })
}

// finish records a transaction whose new build was seen healthy: database, product, history,
// then the journal's committed state. Each write replaces a whole file, so finishing twice is
// harmless.
func (s *Store) finish(j *Journal, detail string) error {
	if err := saveDB(s.Root, j.DB); err != nil {
		return err
	}
	if j.Product != nil && j.Product.Name != "" {
		if err := saveProduct(s.Root, j.Product); err != nil {
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
func (s *Store) pruneBackups(db *DB) {
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
		if err := saveDB(s.Root, j.OldDB); err != nil {
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
		return removeDurable(target)
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
