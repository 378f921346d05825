package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/selfupdate"

	"relayfix/internal/safefile"
)

// hashFile returns the lower-case hex SHA-256 and size of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncFile fsyncs an existing file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// copyDurable copies src to dst atomically and durably (see safefile.Write), giving it mode and
// mtime. It returns the SHA-256 of what it wrote.
func copyDurable(src, dst string, mode fs.FileMode, mtime time.Time) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if err := safefile.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("copy to %s: %w", dst, err)
	}
	h := sha256.New()
	_, err = safefile.Write(dst, safefile.Options{Perm: mode, ModTime: mtime}, func(w io.Writer) error {
		if _, err := io.Copy(io.MultiWriter(w, h), in); err != nil {
			return fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// newPath is where selfupdate prepares the replacement of target.
func newPath(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".new")
}

// swapBinary replaces the existing file target with src using minio/selfupdate, which checks the
// SHA-256 of what it writes. selfupdate itself never fsyncs, so the prepared file is synced (and
// given its manifest date) between Prepare and Commit, and the directories after Commit. Between
// Commit's two renames the target does not exist; the journal's "swapping" state covers that
// window. The hook runs once the new file is prepared and synced, before the renames.
func swapBinary(src, target, oldSave, wantSHA string, mode fs.FileMode, mtime time.Time, prepared func()) error {
	sum, err := hex.DecodeString(wantSHA)
	if err != nil {
		return fmt.Errorf("swap %s: bad checksum %q: %w", target, wantSHA, err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("swap %s: read new build: %w", target, err)
	}
	if err := safefile.MkdirAll(filepath.Dir(oldSave), 0o755); err != nil {
		return fmt.Errorf("swap %s: %w", target, err)
	}
	opts := selfupdate.Options{TargetPath: target, TargetMode: mode, Checksum: sum, OldSavePath: oldSave}
	if err := selfupdate.PrepareAndCheckBinary(bytes.NewReader(data), opts); err != nil {
		os.Remove(newPath(target))
		return fmt.Errorf("swap %s: prepare: %w", target, err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(newPath(target), mtime, mtime); err != nil {
			return fmt.Errorf("swap %s: %w", target, err)
		}
	}
	if err := syncFile(newPath(target)); err != nil {
		return fmt.Errorf("swap %s: %w", target, err)
	}
	if prepared != nil {
		prepared()
	}
	if err := selfupdate.CommitBinary(opts); err != nil {
		// RollbackError needs the error exactly as selfupdate returned it.
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("swap %s: commit: %v; putting the old file back failed too: %w", target, err, rerr)
		}
		return fmt.Errorf("swap %s: commit: %w", target, err)
	}
	if err := safefile.SyncDir(filepath.Dir(target)); err != nil {
		return err
	}
	return safefile.SyncDir(filepath.Dir(oldSave))
}
