package yield

import (
	"fmt"

	"golang.org/x/sys/unix"
)

const (
	ioprioClassBE    = 2 // best effort
	ioprioClassShift = 13
	ioprioWhoProcess = 1
	ioprioLowest     = 7
)

func setThread(tid int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil {
		return fmt.Errorf("nice of thread %d: %w", tid, err)
	}
	prio := ioprioClassBE<<ioprioClassShift | ioprioLowest
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio)); errno != 0 {
		return fmt.Errorf("I/O priority of thread %d: %w", tid, errno)
	}
	return nil
}
