// Package safefile writes files so that a crash leaves either the old content or the new, never a
// mix: write a temporary file in the same directory, fsync it, rename it over the target, and
// fsync the directory so the rename itself is durable (restic's local backend does the same).
//
// Write streams: the content comes from a function that writes to the temporary file, so a
// package of hundreds of megabytes, a copy that hashes as it goes, or a payload that is checked
// while it is extracted all go through the one helper. WriteFile is Write for bytes in memory.
package safefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Options say what the written file looks like besides its content.
type Options struct {
	// Perm is the file's permission bits; 0644 when zero.
	Perm fs.FileMode
	// ModTime, when set, is the file's modification time (a file table dates its files).
	ModTime time.Time
}

// Write atomically replaces path with what write writes, durably, and returns the number of
// bytes written. If write fails, nothing at path changes and no temporary file is left: write can
// check what it copies and return an error to refuse it. The directory must exist.
func Write(path string, opts Options, write func(io.Writer) error) (int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	cw := &countingWriter{w: f}
	if err := write(cw); err != nil {
		return 0, err
	}
	perm := opts.Perm
	if perm == 0 {
		perm = 0o644
	}
	if err := f.Chmod(perm); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if !opts.ModTime.IsZero() {
		if err := os.Chtimes(tmp, opts.ModTime, opts.ModTime); err != nil {
			return 0, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return cw.n, SyncDir(dir)
}

// WriteFile atomically replaces path with data, durably.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	_, err := Write(path, Options{Perm: perm}, func(w io.Writer) error {
		_, err := w.Write(data)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
	return err
}

// WriteJSON atomically replaces path with v as indented JSON, durably: the form of the records
// an install root keeps (product, database, journal).
func WriteJSON(path string, v any, perm fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, append(b, '\n'), perm)
}

// ReadJSON decodes the JSON file at path into v and reports whether there was a file; a missing
// file is not an error. what names the record in errors: "read journal: …", "journal PATH is
// corrupt: …".
func ReadJSON(path, what string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s %s is corrupt: %w", what, path, err)
	}
	return true, nil
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Remove removes path if it exists and syncs its directory, so the removal is durable too.
func Remove(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and fsyncs the parent of
// each directory it creates, so that the new directories survive a power loss: without that a
// file synced inside a new directory can vanish with the directory's own name.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !os.IsExist(err) {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return SyncDir(filepath.Dir(dir))
}
