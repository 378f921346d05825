package trackhost

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"relayfix/internal/layout"
)

// DefaultEscalationGrace is how long an escalation program still running when the relay stops
// may go on before it is asked to stop with SIGTERM.
const DefaultEscalationGrace = 5 * time.Second

// escalator runs the escalation programs. A program is not tied to the relay's life: `hotfix
// rollback` swaps files and journals each step, and killing it mid-transaction would leave
// the next run to recover. When the relay stops, a program still running gets a grace period to
// finish, then SIGTERM (hotfix stops at a step it can resume from), and the relay waits for it
// to exit. It is never sent SIGKILL.
type escalator struct {
	root layout.Root
	cfg  Escalation
	log  *slog.Logger
	wg   *sync.WaitGroup // the host's, so that the host waits for the program
}

// run takes the configured action in the background; its outcome is logged. ctx is the host's:
// when it ends, the program's grace period starts.
func (e *escalator) run(ctx context.Context, d Decision, reason string) {
	var cmd *exec.Cmd
	switch e.cfg.Action {
	case ActionRun:
		cmd = exec.Command(e.cfg.Program, e.cfg.Args...)
	case ActionRollback:
		hotfix := e.cfg.Hotfix
		if hotfix == "" {
			hotfix = e.root.Bin("hotfix")
		}
		cmd = exec.Command(hotfix, "rollback", "msgtrack", "--root", string(e.root))
	default:
		return
	}
	cmd.Env = append(os.Environ(),
		"RELAYFIX_ROOT="+string(e.root),
		"RELAYFIX_COMPONENT="+ComponentName,
		"RELAYFIX_FAILURES="+strconv.Itoa(d.Count),
		"RELAYFIX_WINDOW_MS="+strconv.Itoa(e.cfg.WindowMS),
		"RELAYFIX_LAST_EXIT="+reason,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	e.log.Warn("tracking component failed too often; escalating", "action", e.cfg.Action, "failures", d.Count, "command", cmd.String())
	if err := cmd.Start(); err != nil {
		e.log.Error("tracking escalation failed", "action", e.cfg.Action, "error", err)
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.wait(ctx, cmd)
		if err != nil {
			e.log.Error("tracking escalation failed", "action", e.cfg.Action, "error", err, "output", strings.TrimSpace(out.String()))
			return
		}
		e.log.Info("tracking escalation done", "action", e.cfg.Action, "output", strings.TrimSpace(out.String()))
	}()
}

// wait waits for cmd to exit. Once ctx ends it gives the program its grace period, then SIGTERM,
// and waits on.
func (e *escalator) wait(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	grace := time.NewTimer(e.grace())
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
	}
	e.log.Warn("relay stopping: asking the tracking escalation to stop", "pid", cmd.Process.Pid, "grace", e.grace())
	cmd.Process.Signal(syscall.SIGTERM)
	return <-done
}

func (e *escalator) grace() time.Duration {
	if e.cfg.GraceMS > 0 {
		return time.Duration(e.cfg.GraceMS) * time.Millisecond
	}
	return DefaultEscalationGrace
}
