package packages

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"relayfix/internal/layout"
	"relayfix/relay/control"
)

// Services is what the store needs from the running relay: restart a component on the installed
// build, and report status. control.Client satisfies it.
type Services interface {
	Status(ctx context.Context) (*control.Status, error)
	RestartComponent(ctx context.Context, name string) (*control.ComponentStatus, error)
}

// ServiceResult says what happened to one service named by a package.
type ServiceResult struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Health  string `json:"health,omitempty"`
	// Deferred is true when the service was not running (the relay is down, or runs without the
	// component, or the operator switched it off): it starts on the installed build the next time
	// it starts. Nothing ever reboots the host.
	Deferred bool   `json:"deferred,omitempty"`
	Note     string `json:"note,omitempty"` // why it was deferred
}

// HealthError is returned when a service did not come up healthy on the expected build in time.
type HealthError struct {
	Service, Want string
	Last          control.ComponentStatus
	Err           error
}

func (e *HealthError) Error() string {
	msg := fmt.Sprintf("%s did not become healthy on %s", e.Service, e.Want)
	if e.Last.Version != "" || e.Last.Health != "" {
		msg += fmt.Sprintf(" (last seen: version %s, %s", orDash(e.Last.Version), orDash(e.Last.Health))
		if e.Last.Detail != "" {
			msg += ": " + e.Last.Detail
		}
		msg += ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *HealthError) Unwrap() error { return e.Err }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// expectVersion returns the file version the service should report once restarted on the files
// of the transaction: the file the component runs from, else the file whose component is named
// like the service, else the transaction's only file.
func expectVersion(root layout.Root, files []TxFile, newBuild bool, svc string, cs *control.ComponentStatus) string {
	pick := func(f TxFile) string {
		if newBuild {
			return f.New.Version.String()
		}
		return f.OldVersion
	}
	if cs != nil && cs.Binary != "" {
		want, _ := filepath.Abs(cs.Binary)
		for _, f := range files {
			if p, _ := filepath.Abs(root.Join(f.Path)); p == want {
				return pick(f)
			}
		}
	}
	for _, f := range files {
		if f.New.ComponentName() == svc || f.New.Name == svc {
			return pick(f)
		}
	}
	if len(files) == 1 {
		return pick(files[0])
	}
	return ""
}

// restartServices restarts each service and waits until it reports the expected build, healthy.
// A relay that is not running is not an error: the services start on the installed files when it
// next starts.
func (s *Store) restartServices(ctx context.Context, names []string, files []TxFile, newBuild bool) ([]ServiceResult, error) {
	var out []ServiceResult
	for _, name := range names {
		if s.Services == nil {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		// A relay that runs without the component, or with it switched off, starts it from the
		// installed file when it is switched on: there is nothing to restart now.
		sctx, cancel := context.WithTimeout(ctx, s.healthTimeout())
		st, err := s.Services.Status(sctx)
		cancel()
		if errors.Is(err, control.ErrNotRunning) {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		if err == nil {
			if c, ok := st.Component(name); !ok {
				out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd runs without " + name})
				continue
			} else if !c.Enabled {
				out = append(out, ServiceResult{Name: name, Deferred: true, Note: name + " is switched off"})
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, s.healthTimeout())
		cs, err := s.Services.RestartComponent(rctx, name)
		cancel()
		if errors.Is(err, control.ErrNotRunning) {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		want := expectVersion(s.Root, files, newBuild, name, cs)
		if err != nil {
			var last control.ComponentStatus
			if cs != nil {
				last = *cs
			}
			return out, &HealthError{Service: name, Want: want, Last: last, Err: err}
		}
		s.hook("restarted")
		// The restart's own answer comes from the new build once it has shaken hands: when it is
		// already the expected version, healthy, there is nothing to wait for.
		if cs != nil && cs.Health == control.HealthHealthy && (want == "" || cs.Version == want) {
			out = append(out, ServiceResult{Name: name, Version: cs.Version, Health: cs.Health})
			continue
		}
		cst, err := s.waitHealthy(ctx, name, want)
		if err != nil {
			return out, err
		}
		out = append(out, ServiceResult{Name: name, Version: cst.Version, Health: cst.Health})
	}
	return out, nil
}

// waitHealthy polls the relay until the component reports want (any version when want is empty)
// and is healthy, or the health timeout passes.
func (s *Store) waitHealthy(ctx context.Context, name, want string) (control.ComponentStatus, error) {
	timeout := s.healthTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last control.ComponentStatus
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.Services.Status(ctx)
		if err == nil {
			if c, ok := st.Component(name); ok {
				last = c
				if c.Health == control.HealthHealthy && (want == "" || c.Version == want) {
					return c, nil
				}
				if c.Health == control.HealthFailed {
					return last, &HealthError{Service: name, Want: want, Last: last}
				}
			}
		}
		select {
		case <-ctx.Done():
			return last, &HealthError{Service: name, Want: want, Last: last, Err: fmt.Errorf("no healthy report within %s", timeout)}
		case <-tick.C:
		}
	}
}

func (s *Store) healthTimeout() time.Duration {
	if s.HealthTimeout > 0 {
		return s.HealthTimeout
	}
	return 15 * time.Second
}
