package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"relayfix/internal/layout"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
	"relayfix/relay/control"
)

// relayServices gives the store the running relay through its control socket.
type relayServices struct{ c control.Client }

func (r relayServices) Component(ctx context.Context, name string) (store.Component, bool, error) {
	st, err := r.c.Status(ctx)
	if err != nil {
		return store.Component{}, false, serviceErr(err)
	}
	c, ok := st.Component(name)
	return component(c), ok, nil
}

func (r relayServices) Restart(ctx context.Context, name string) (*store.Component, error) {
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
