package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/internal/stamp"
)

// A new build that reports another version than the one asked for never takes over: the running
// relayd serves on, and `ctl upgrade` exits 1 saying why. Asked for its own version, it does.
func TestUpgradeVersionGate(t *testing.T) {
	root := relaytest.ShortRoot(t)
	p := startRelay(t, root, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := p.Ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, code := ctl(t, root, "upgrade", "--version", "9.9.9.9")
	if code != 1 || !strings.Contains(p.Log(), "reports another version than expected") {
		t.Fatalf("upgrade to a version the build does not report: exit %d\n%s", code, out)
	}
	if st, err := p.Ctl.Status(ctx); err != nil || st.PID != before.PID {
		t.Fatalf("after the refused upgrade: %+v, %v (pid was %d)", st, err, before.PID)
	}
	if out, code := ctl(t, root, "upgrade", "--version", stamp.RelaydVersion); code != 0 {
		t.Fatalf("upgrade to its own version: exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(root.PIDFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	if pid == before.PID {
		t.Fatalf("the pid file still names %d after the upgrade", pid)
	}
	for {
		st, err := p.Ctl.Status(ctx)
		if err == nil && st.PID == pid && st.Version == stamp.RelaydVersion {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the new relayd %d does not answer: %+v %v", pid, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
