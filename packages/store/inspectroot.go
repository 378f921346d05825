package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"relayfix/internal/layout"
)

// NotRootError is returned for a directory that holds no install root: nothing was ever
// applied to it. Only a service pack creates a root; every other command refuses such a
// directory rather than create files in it.
type NotRootError struct{ Dir string }

func (e *NotRootError) Error() string { return "not a relayfix install root: " + e.Dir }

// CheckRoot returns a NotRootError unless root is an install root: a directory with a product
// record, an installed-files database, a journal (a service pack interrupted before it wrote
// the other two) or repository sources (added to fetch the service pack that will create the
// root, as 'hotfix source add' does on a new host). It only reads.
func CheckRoot(root layout.Root) error {
	for _, p := range []string{root.Product(), root.InstalledDB(), root.Journal(), root.Sources()} {
		_, err := os.Stat(p)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("check install root %s: %w", root, err)
		}
	}
	return &NotRootError{Dir: string(root)}
}

// InterruptedError says that the root's last transaction did not finish. A read-only command
// reports it and changes nothing: finishing or undoing it restarts services and swaps files,
// which is the job of 'hotfix recover' (or of the next command that changes the root).
type InterruptedError struct {
	TxID, Action, Package string
	State                 State
	// Running is true while the process that journaled it still holds the root's lock: the
	// transaction is in progress, not interrupted.
	Running bool
}

func (e *InterruptedError) Error() string {
	if e.Running {
		return fmt.Sprintf("a transaction is in progress (%s of %s, at %q); what is shown may change when it ends",
			e.Action, e.Package, e.State)
	}
	return fmt.Sprintf("the %s of %s (transaction %s) was interrupted at %q; run 'hotfix recover' to finish or undo it",
		e.Action, e.Package, e.TxID, e.State)
}

// Pending returns an InterruptedError when the root's journal holds an unfinished transaction,
// and nil otherwise. It writes nothing, not even the lock file: it only asks the kernel whether
// some process holds the lock.
func Pending(root layout.Root) error {
	j, err := LoadJournal(root)
	if err != nil {
		return err
	}
	if j == nil || j.Finished() {
		return nil
	}
	return &InterruptedError{TxID: j.ID, Action: j.Action, Package: j.Package, State: j.State, Running: lockHeld(root)}
}

// lockHeld reports whether another process holds the root's transaction lock, without creating
// or writing the lock file.
func lockHeld(root layout.Root) bool {
	f, err := os.Open(root.Lock())
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
