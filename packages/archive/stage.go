package archive

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
	dirs   []string          // directories created, parents first
}

// errMismatch makes safefile.Write drop a payload that failed a check.
var errMismatch = errors.New("payload does not match its row")

// extract streams the entry's bytes through a digester and, when staging, into a temporary
// file (safefile.Write), which becomes the staged file only if every check passed.
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
	mode := fs.FileMode(row.Mode) & fs.ModePerm
	if mode == 0 {
		mode = 0o755
	}
	var rep verifier.FileReport
	var copyErr error
	_, err := safefile.Write(final, safefile.Options{Perm: mode, ModTime: row.Date}, func(w io.Writer) error {
		if _, copyErr = io.CopyBuffer(io.MultiWriter(d, w), r, buf); copyErr != nil {
			return copyErr
		}
		if rep = d.Digest(hdr.ModTime).Compare(row); !rep.OK() {
			return errMismatch
		}
		return nil
	})
	switch {
	case copyErr != nil:
		return verifier.FileReport{}, copyErr
	case errors.Is(err, errMismatch):
		return rep, nil
	case err != nil:
		return verifier.FileReport{}, fmt.Errorf("stage: %w", err)
	}
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

// undo removes every file and directory the stager created.
func (s *stager) undo() {
	for _, f := range s.staged {
		os.Remove(f)
	}
	for i := len(s.dirs) - 1; i >= 0; i-- {
		os.Remove(s.dirs[i])
	}
	s.staged, s.dirs = nil, nil
}
