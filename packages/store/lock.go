package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"relayfix/internal/layout"
)

// BusyError is returned when another process holds the root's transaction lock.
type BusyError struct{ PID int }

func (e *BusyError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another hotfix transaction is in progress (pid %d)", e.PID)
	}
	return "another hotfix transaction is in progress"
}

// Lock is the exclusive lock on ROOT/hotfix/lock that makes transactions one at a time. The kernel
// drops an flock when its holder dies, so a crashed hotfix never leaves the root locked.
type Lock struct{ f *os.File }

// AcquireLock takes the lock without waiting: a second hotfix fails at once with a BusyError
// naming the holder, rather than queueing behind a transaction that restarts services.
func AcquireLock(root layout.Root) (*Lock, error) {
	if err := os.MkdirAll(root.Hotfix(), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", root.Lock(), err)
	}
	f, err := os.OpenFile(root.Lock(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", root.Lock(), err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(root.Lock())
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &BusyError{PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", root.Lock(), err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
