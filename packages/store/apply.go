package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"relayfix/manifest"
	"relayfix/packages/installdb"
)

// Apply verifies the package through open, checks that it applies to the root, and installs it
// through the journaled states; on any failure after the first file was touched it puts the old
// build back, running. With dryRun it returns the plan and changes nothing.
func (s *Store) Apply(ctx context.Context, open OpenFunc, dryRun bool) (*Result, *Plan, error) {
	if dryRun {
		return s.dryRun(ctx, open)
	}
	if err := s.checkNewRoot(ctx, open); err != nil {
		return nil, nil, err
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
		if _, same := AlreadyInstalled(err); !same {
			s.record(HistoryEntry{ID: id, Package: m.ID, Action: ActionApply, Result: ResultFailed, Start: start, End: s.now(), Error: err.Error()})
		}
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
		if res.State == StateCommitted && len(staged.KeyFiles) > 0 {
			trusted, terr := TrustKeys(s.Root, staged.KeyFiles)
			if trusted {
				res.TrustedKeys = staged.KeyFiles
			}
			res.TrustErr = terr
		}
	}
	return res, nil, err
}

// checkNewRoot refuses, before anything is written, a package that cannot create the root it
// is applied to: on a directory that is not yet an install root only a service pack that
// applies to a bare root goes on.
func (s *Store) checkNewRoot(ctx context.Context, open OpenFunc) error {
	err := CheckRoot(s.Root)
	var nr *NotRootError
	if !errors.As(err, &nr) {
		return err
	}
	staged, err := open(ctx, "")
	if err != nil {
		return err
	}
	err = checkApplicable(staged.Manifest, nil, &installdb.DB{})
	if staged.Manifest.Kind != manifest.KindServicePack {
		if err == nil {
			err = fmt.Errorf("%s is a hotfix: apply a service pack first", staged.Manifest.ID)
		}
		return fmt.Errorf("%w: %w", nr, err)
	}
	return err
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
func (s *Store) installed() (*installdb.Product, *installdb.DB, error) {
	prod, err := installdb.LoadProduct(s.Root)
	if err != nil {
		return nil, nil, err
	}
	db, err := installdb.Load(s.Root)
	if err != nil {
		return nil, nil, err
	}
	return prod, db, nil
}

func (s *Store) plan(m *manifest.Manifest, db *installdb.DB, checkErr error) *Plan {
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
func (s *Store) planApply(id string, start time.Time, m *manifest.Manifest, staged *Staged, stage string, prod *installdb.Product, db *installdb.DB) (*Journal, error) {
	newDB := db.Clone()
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
			New: installdb.InstalledFile{File: f, Package: m.ID, Installed: start, TxID: id}}
		if err := s.planOld(&tf, id, db); err != nil {
			return nil, err
		}
		row := tf.New
		if cur, ok := db.Lookup(f.Path); ok {
			row.Previous = append([]installdb.PreviousBuild{{File: cur.File, Package: cur.Package, Installed: cur.Installed,
				TxID: cur.TxID, Backup: tf.Backup}}, cur.Previous...)
			if cur.Package == m.ID && cur.SHA256 == f.SHA256 {
				// A hotfix applied again to complete it after a component rollback: this file
				// stayed in place, and rolling the hotfix back must go past it in one step.
				row.Previous = cur.Previous
			}
		}
		newDB.Put(row)
		if hw, ok := newDB.HighWater[f.Path]; !ok || f.Version.Compare(hw) > 0 {
			newDB.HighWater[f.Path] = f.Version
		}
		j.Files = append(j.Files, tf)
	}
	newDB.Packages = slices.DeleteFunc(newDB.Packages, func(p installdb.InstalledPackage) bool { return p.ID == m.ID })
	rec := installdb.InstalledPackage{ID: m.ID, Title: m.Title, Kind: m.Kind, Released: m.Released,
		Installed: start, TxID: id, Services: m.Restart.Services, Supersedes: m.Supersedes}
	if m.Kind == manifest.KindServicePack && prod != nil {
		rec.Replaced = &installdb.Level{Name: prod.Name, Version: prod.Version, ServicePack: prod.ServicePack}
	}
	newDB.Packages = append(newDB.Packages, rec)
	newProd := &installdb.Product{}
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
func (s *Store) planOld(tf *TxFile, id string, db *installdb.DB) error {
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
