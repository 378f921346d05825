package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"relayfix/manifest"
	"relayfix/packages/installdb"
)

// NothingEarlierError is returned when a file has no earlier build to go back to.
type NothingEarlierError struct {
	Name, Version, Package string
}

func (e *NothingEarlierError) Error() string {
	return fmt.Sprintf("%s %s was installed by %s; there is nothing earlier to roll back to", e.Name, e.Version, e.Package)
}

// BackupError is returned when a backup does not match the hash recorded when it was taken.
type BackupError struct {
	Path, Backup, Want, Got string
}

func (e *BackupError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("the backup of %s (%s) is missing; refusing to roll back, nothing was changed", e.Path, e.Backup)
	}
	return fmt.Sprintf("the backup of %s (%s) is corrupt: SHA-256 %s, recorded %s; refusing to roll back, nothing was changed",
		e.Path, e.Backup, e.Got, e.Want)
}

// ErrNotInstalled is wrapped when rollback names nothing that is installed.
var ErrNotInstalled = errors.New("no installed component or hotfix by that name")

// NotInstalledError is returned when rollback names nothing that is installed; it lists what
// can be rolled back.
type NotInstalledError struct {
	Target     string
	Candidates []string
}

func (e *NotInstalledError) Error() string {
	if len(e.Candidates) == 0 {
		return fmt.Sprintf("rollback %s: %v; nothing installed here can be rolled back", e.Target, ErrNotInstalled)
	}
	return fmt.Sprintf("rollback %s: %v; what can be rolled back: %s", e.Target, ErrNotInstalled, strings.Join(e.Candidates, ", "))
}

func (e *NotInstalledError) Unwrap() error { return ErrNotInstalled }

// rollbackCandidates lists what rollback can take back: components with an earlier build that
// a service pack did not install, hotfixes with files installed, and service packs laid over
// another.
func rollbackCandidates(db *installdb.DB) []string {
	var out []string
	for _, f := range db.Files {
		p, _ := db.Package(f.Package)
		if len(f.Previous) > 0 && p.Kind != manifest.KindServicePack && !slices.Contains(out, f.Name) {
			out = append(out, f.Name)
		}
	}
	for _, p := range db.Packages {
		installed := slices.ContainsFunc(db.Files, func(f installdb.InstalledFile) bool { return f.Package == p.ID })
		if (p.Kind == manifest.KindHotfix && installed) || (p.Kind == manifest.KindServicePack && p.Replaced != nil) {
			out = append(out, p.ID)
		}
	}
	return out
}

// servicePackGoesBack refuses to roll back a service pack that laid down the first product
// level (there is nothing to go back to) or that hotfixes applied after it depend on (they
// name the level it brought); it names those hotfixes.
func servicePackGoesBack(db *installdb.DB, sp installdb.InstalledPackage) error {
	if sp.Replaced == nil {
		return fmt.Errorf("%s is the service pack that created this root: there is no earlier product level to roll back to", sp.ID)
	}
	var after []string
	seen := false
	for _, p := range db.Packages {
		if p.ID == sp.ID {
			seen = true
			continue
		}
		if seen && p.Kind == manifest.KindHotfix {
			after = append(after, p.ID)
		}
	}
	if len(after) > 0 {
		return fmt.Errorf("%s is required by %s, installed after it: roll %s back first ('hotfix rollback %s')",
			sp.ID, strings.Join(after, ", "), plural(after, "it", "them"), after[len(after)-1])
	}
	return nil
}

func plural(s []string, one, many string) string {
	if len(s) == 1 {
		return one
	}
	return many
}

// Rollback takes a component (e.g. msgtrack) or every file of a hotfix (e.g. KB910618) back to
// the build it replaced, restoring it from its backup after checking the backup's recorded hash,
// through the same journaled steps as Apply. A second rollback goes further back while the
// database remembers earlier builds.
func (s *Store) Rollback(ctx context.Context, target string) (*Result, error) {
	if err := CheckRoot(s.Root); err != nil {
		return nil, err
	}
	lock, err := AcquireLock(s.Root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if _, err := s.recoverLocked(ctx); err != nil {
		return nil, fmt.Errorf("finish the interrupted transaction first: %w", err)
	}
	db, err := installdb.Load(s.Root)
	if err != nil {
		return nil, err
	}
	prod, err := installdb.LoadProduct(s.Root)
	if err != nil {
		return nil, err
	}
	var rows []installdb.InstalledFile
	var sp *installdb.InstalledPackage
	if p, ok := db.Package(target); ok {
		if p.Kind == manifest.KindServicePack {
			if err := servicePackGoesBack(db, p); err != nil {
				return nil, err
			}
			sp = &p
		}
		for _, f := range db.Files {
			if f.Package == target {
				rows = append(rows, f)
			}
		}
		if len(rows) == 0 {
			return nil, fmt.Errorf("%s: none of its files is installed any more (a later package replaced them)", target)
		}
	} else {
		for _, f := range db.Files {
			if f.ComponentName() == target || f.Name == target || f.Path == target {
				if p, ok := db.Package(f.Package); ok && p.Kind == manifest.KindServicePack && len(f.Previous) > 0 {
					return nil, fmt.Errorf("%s %s was installed by the service pack %s, which goes back only as a whole: run 'hotfix rollback %s'",
						f.Name, f.Version, p.ID, p.ID)
				}
				rows = append(rows, f)
			}
		}
	}
	if len(rows) == 0 {
		return nil, &NotInstalledError{Target: target, Candidates: rollbackCandidates(db)}
	}

	start := s.now()
	id := newTxID(start)
	j := &Journal{ID: id, Action: ActionRollback, Package: target, PID: os.Getpid(), Started: start}
	newDB := db.Clone()
	for _, row := range rows {
		if len(row.Previous) == 0 {
			return nil, &NothingEarlierError{Name: row.Name, Version: row.Version.String(), Package: row.Package}
		}
		prev := row.Previous[0]
		sum, _, err := hashFile(s.Root.Join(prev.Backup))
		if err != nil || sum != prev.SHA256 {
			return nil, &BackupError{Path: row.Path, Backup: prev.Backup, Want: prev.SHA256, Got: sum}
		}
		tf := TxFile{Path: row.Path, Source: prev.Backup, New: installdb.InstalledFile{File: prev.File, Package: prev.Package,
			Installed: prev.Installed, TxID: prev.TxID, Previous: slices.Clone(row.Previous[1:])}}
		if err := s.planOld(&tf, id, db); err != nil {
			return nil, err
		}
		newDB.Put(tf.New)
		j.Files = append(j.Files, tf)
		if p, ok := db.Package(row.Package); ok {
			for _, svc := range p.Services {
				if !slices.Contains(j.Services, svc) {
					j.Services = append(j.Services, svc)
				}
			}
		}
	}
	// A hotfix none of whose files remains installed is no longer installed; a service pack
	// rolled back is not either.
	var gone []string
	newDB.Packages = slices.DeleteFunc(newDB.Packages, func(p installdb.InstalledPackage) bool {
		if sp != nil && p.ID == sp.ID {
			gone = append(gone, p.ID)
			return true
		}
		if p.Kind != manifest.KindHotfix {
			return false
		}
		for _, f := range newDB.Files {
			if f.Package == p.ID {
				return false
			}
		}
		gone = append(gone, p.ID)
		return true
	})
	if prod != nil {
		np := *prod
		np.Packages = slices.DeleteFunc(slices.Clone(prod.Packages), func(id string) bool { return slices.Contains(gone, id) })
		if sp != nil {
			np.Name, np.Version, np.ServicePack = sp.Replaced.Name, sp.Replaced.Version, sp.Replaced.ServicePack
		}
		j.Product = &np
	}
	j.DB, j.OldDB = newDB, db
	if err := s.save(j, StateVerified); err != nil {
		return nil, err
	}
	return s.execute(ctx, j)
}
