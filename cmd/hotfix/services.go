package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
	"relayfix/relay/control"
	"relayfix/verifier"
)

// relayServices gives the store the running relay through its control socket: its components,
// and the relay itself as the service "relay", which restarts by a live upgrade.
type relayServices struct {
	c    control.Client
	root layout.Root
}

func (r relayServices) Component(ctx context.Context, name string) (store.Component, bool, error) {
	st, err := r.c.Status(ctx)
	if err != nil {
		return store.Component{}, false, serviceErr(err)
	}
	if name == record.ServiceRelay {
		return r.relay(st), true, nil
	}
	c, ok := st.Component(name)
	return component(c), ok, nil
}

// relay reports relayd itself: healthy once it answers. A new relayd takes over only once the
// components that were healthy in the old one are healthy in it, and each component is a service
// of its own, with its own health: a tracking build that crash-loops does not make the relay that
// carries the mail unhealthy.
func (r relayServices) relay(st *control.Status) store.Component {
	return store.Component{Name: record.ServiceRelay, Binary: r.root.Bin("relayd"), Version: st.Version,
		Enabled: true, Health: store.HealthHealthy}
}

// upgradeMargin is kept of the caller's deadline for the answer to come back after the new
// relayd's own health wait.
const upgradeMargin = 2 * time.Second

// restartRelay upgrades the running relay live to the installed ROOT/bin/relayd, which must
// report the version stamped in that file, and waits until the control socket is answered by a
// new process. If the new build does not take over, the old one serves on and the error says why.
func (r relayServices) restartRelay(ctx context.Context) (*store.Component, error) {
	before, err := r.c.Status(ctx)
	if err != nil {
		return nil, serviceErr(err)
	}
	want, err := verifier.ReadFileVersion(r.root.Bin("relayd"))
	if err != nil {
		return nil, err
	}
	health := 15 * time.Second
	if d, ok := ctx.Deadline(); ok {
		health = max(time.Until(d)-upgradeMargin, time.Second)
	}
	old := r.relay(before)
	if before.Version == want.String() {
		// Already the installed build (a rollback after a new build that never took over).
		return &old, nil
	}
	if err := r.c.Upgrade(ctx, want.String(), health); err != nil {
		return &old, fmt.Errorf("live upgrade of relayd to %s: %w", want, err)
	}
	// The old process drains and lets go of the control socket; the new one answers it then.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := r.c.Status(ctx)
		if err == nil && st.PID != before.PID {
			c := r.relay(st)
			return &c, nil
		}
		select {
		case <-ctx.Done():
			return &old, fmt.Errorf("live upgrade of relayd to %s: no answer from the new process: %w", want, ctx.Err())
		case <-t.C:
		}
	}
}

func (r relayServices) Restart(ctx context.Context, name string) (*store.Component, error) {
	if name == record.ServiceRelay {
		return r.restartRelay(ctx)
	}
	cs, err := r.c.RestartComponent(ctx, name)
	if cs == nil {
		return nil, serviceErr(err)
	}
	c := component(*cs)
	return &c, serviceErr(err)
}

// restartPending asks the relay running on root what it runs and returns the components whose
// running build is not the installed file. A relay that does not answer has nothing pending:
// it starts every component on the installed build.
// A relay this user may not ask is an error: whether a restart is pending is then unknown.
func restartPending(ctx context.Context, root layout.Root) ([]installdb.Stale, error) {
	db, err := installdb.Load(root)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := control.Client{Path: root.ControlSocket()}.Status(ctx)
	if errors.Is(err, control.ErrNotRunning) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot tell whether a restart is pending: %w", err)
	}
	running := []installdb.Running{{Name: "relayd", Version: st.Version}}
	for _, c := range st.Components {
		if c.Enabled {
			running = append(running, installdb.Running{Name: c.Name, Binary: c.Binary, Version: c.Version})
		}
	}
	return db.RestartPending(root, running), nil
}

// component converts the control socket's component status to the store's.
func component(c control.ComponentStatus) store.Component {
	health := c.Health
	switch c.Health {
	case control.HealthHealthy:
		health = store.HealthHealthy
	case control.HealthFailed:
		health = store.HealthFailed
	}
	return store.Component{Name: c.Name, Binary: c.Binary, Version: c.Version, Enabled: c.Enabled, Health: health, Detail: c.Detail}
}

// serviceErr marks the control client's "not running" as the store's.
func serviceErr(err error) error {
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("%w: %w", store.ErrNotRunning, err)
	}
	return err
}
