//go:build linux

package yield

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Every thread of the process ends up at the lower priorities, not only the one that asked.
func TestLowerEveryThread(t *testing.T) {
	if err := Lower(); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
		if err != nil {
			continue // the thread ended
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		// Field 19 of stat is nice; rest starts at field 3.
		if nice, _ := strconv.Atoi(f[19-3]); nice != Nice {
			t.Errorf("thread %d: nice %d, want %d", tid, nice, Nice)
		}
		prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if errno != 0 {
			t.Fatalf("ioprio_get %d: %v", tid, errno)
		}
		if want := uintptr(ioprioClassBE<<ioprioClassShift | ioprioLowest); prio != want {
			t.Errorf("thread %d: I/O priority %#x, want %#x", tid, prio, want)
		}
	}
}
