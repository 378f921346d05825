package packages

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"relayfix/internal/safefile"
	"relayfix/manifest"
	"relayfix/verifier"
)

// stager extracts verified payload files below dir and can take all of them back.
type stager struct {
	dir    string
	staged map[string]string // install path -> staged file
	temps  []string          // temporary files not yet renamed
	dirs   []string          // directories created, parents first
}

// extract streams the entry's bytes through a digester and, when staging, into a temporary
// file. The file is synced and renamed to its staged name only if every check passed.
func (s *stager) extract(r io.Reader, hdr *tar.Header, row manifest.File, buf []byte) (verifier.FileReport, error) {
	d := verifier.NewDigester()
	if s.dir == "" {
		if _, err := io.CopyBuffer(d, r, buf); err != nil {
			return verifier.FileReport{}, err
		}
		return d.Digest(hdr.ModTime).Compare(row), nil
	}
	final := filepath.Join(s.dir, filepath.FromSlash(row.Path))
	if err := s.mkdirAll(filepath.Dir(final)); err != nil {
		return verifier.FileReport{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return verifier.FileReport{}, fmt.Errorf("stage: %w", err)
	}
	s.temps = append(s.temps, tmp.Name())
	_, err = io.CopyBuffer(io.MultiWriter(d, tmp), r, buf)
	if err != nil {
		tmp.Close()
		return verifier.FileReport{}, err
	}
	rep := d.Digest(hdr.ModTime).Compare(row)
	if !rep.OK() {
		tmp.Close()
		return rep, nil
	}
	mode := fs.FileMode(row.Mode) & fs.ModePerm
	if mode == 0 {
		mode = 0o755
	}
	err = errors.Join(tmp.Chmod(mode), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Chtimes(tmp.Name(), row.Date, row.Date)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		return verifier.FileReport{}, fmt.Errorf("stage: %w", err)
	}
	s.temps = s.temps[:len(s.temps)-1]
	if s.staged == nil {
		s.staged = make(map[string]string)
	}
	s.staged[row.Path] = final
	return rep, nil
}

// mkdirAll creates dir and its missing parents, remembering each one it created.
func (s *stager) mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stage: %w", err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
		s.dirs = append(s.dirs, missing[i])
	}
	return nil
}

// commit makes the staged files' names durable.
func (s *stager) commit() error {
	synced := map[string]bool{}
	for _, f := range s.staged {
		d := filepath.Dir(f)
		if synced[d] {
			continue
		}
		synced[d] = true
		if err := safefile.SyncDir(d); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
	}
	return nil
}

// undo removes every file and directory the stager created.
func (s *stager) undo() {
	for _, t := range s.temps {
		os.Remove(t)
	}
	for _, f := range s.staged {
		os.Remove(f)
	}
	for i := len(s.dirs) - 1; i >= 0; i-- {
		os.Remove(s.dirs[i])
	}
	s.temps, s.staged, s.dirs = nil, nil, nil
}
