package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
)

// Services is what the store needs from the running relay: report a component and restart it
// on the installed build. The store declares it in its own terms so that it does not depend on
// the relay's control protocol; cmd/hotfix adapts the control client to it.
type Services interface {
	// Component reports the named component; ok is false when the relay runs without it.
	Component(ctx context.Context, name string) (c Component, ok bool, err error)
	// Restart restarts the named component on the installed build and reports it as it came up
	// (the report may be set when the restart failed, to say how).
	Restart(ctx context.Context, name string) (*Component, error)
}

// ErrNotRunning is wrapped by a Services error when no relay is running: the services then start
// on the installed build when the relay next starts.
var ErrNotRunning = errors.New("relayd is not running")

// Component is what the running relay reports about one of its components.
type Component struct {
	Name    string
	Binary  string // path of the executable it runs
	Version string // four-part file version the running build reports
	Enabled bool   // false when the operator switched it off
	Health  string // HealthHealthy, HealthFailed, or another state on the way
	Detail  string // why it is not healthy
}

// The component health states the store acts on.
const (
	HealthHealthy = "healthy"
	HealthFailed  = "failed" // cannot be started: waiting longer will not help
)

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
	Last          Component
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
// of the transaction: the file the component runs from (none when it says it runs another
// file), else the file whose component is named like the service, else the transaction's only
// file.
func expectVersion(root layout.Root, files []TxFile, newBuild bool, svc string, cs *Component) string {
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
		// The service runs none of the transaction's files (tracking, when only relayd goes
		// back): whatever build it runs is the right one.
		return ""
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
	restartedRelay := false
	for _, name := range names {
		if s.Services == nil {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		// A relay that runs without the component, or with it switched off, starts it from the
		// installed file when it is switched on: there is nothing to restart now.
		sctx, cancel := context.WithTimeout(ctx, s.healthTimeout())
		c, ok, err := s.Services.Component(sctx, name)
		cancel()
		if errors.Is(err, ErrNotRunning) {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		if err == nil {
			if !ok {
				out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd runs without " + name})
				continue
			} else if !c.Enabled {
				out = append(out, ServiceResult{Name: name, Deferred: true, Note: name + " is switched off"})
				continue
			}
		}
		if err == nil && restartedRelay {
			// The relay restarted as a whole before (a live upgrade), starting its components
			// from the installed files: one already on the expected build, healthy, is not
			// restarted a second time.
			if want := expectVersion(s.Root, files, newBuild, name, &c); want != "" && c.Version == want && c.Health == HealthHealthy {
				out = append(out, ServiceResult{Name: name, Version: c.Version, Health: c.Health})
				continue
			}
		}
		restartedRelay = restartedRelay || name == record.ServiceRelay
		rctx, cancel := context.WithTimeout(ctx, s.healthTimeout())
		cs, err := s.Services.Restart(rctx, name)
		cancel()
		if errors.Is(err, ErrNotRunning) {
			out = append(out, ServiceResult{Name: name, Deferred: true, Note: "relayd is not running"})
			continue
		}
		want := expectVersion(s.Root, files, newBuild, name, cs)
		if err != nil {
			var last Component
			if cs != nil {
				last = *cs
			}
			return out, &HealthError{Service: name, Want: want, Last: last, Err: err}
		}
		s.hook(stepRestarted)
		// The restart's own answer comes from the new build once it has shaken hands: when it is
		// already the expected version, healthy, there is nothing to wait for.
		if cs != nil && cs.Health == HealthHealthy && (want == "" || cs.Version == want) {
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
func (s *Store) waitHealthy(ctx context.Context, name, want string) (Component, error) {
	timeout := s.healthTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last Component
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, ok, err := s.Services.Component(ctx, name)
		if err == nil {
			if ok {
				last = c
				if c.Health == HealthHealthy && (want == "" || c.Version == want) {
					return c, nil
				}
				if c.Health == HealthFailed {
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
