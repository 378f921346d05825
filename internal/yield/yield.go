// Package yield lowers the CPU and I/O priority of the calling process, so that the updater's
// heavy work (hashing, verifying and staging packages of tens of megabytes) runs on the cores
// and the disk the relay leaves over, and the relay's throughput does not dip while hotfix
// applies a package live.
//
// On Linux both priorities belong to threads, not processes: setpriority(PRIO_PROCESS, 0) and
// ioprio_set(IOPRIO_WHO_PROCESS, 0) change only the calling thread. Lower therefore changes every
// thread the process has, and the Go runtime's later threads inherit it from the thread that
// creates them.
package yield

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Nice is the nice value Lower sets: well below the relay's default 0, above nothing that must
// run.
const Nice = 10

// Lower gives every thread of the process nice value Nice and the idle-most best-effort I/O
// priority (class 2, level 7). A process not allowed to change them goes on at its priority:
// the error says so, and the caller may carry on.
func Lower() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("lower priority: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := setThread(tid); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lower priority: %w", err)
	}
	return nil
}
