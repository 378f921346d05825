// Package upgrade is relayd's graceful binary upgrade: the running relayd starts the installed
// ROOT/bin/relayd beside itself, hands it its listening sockets (SMTP and the control socket),
// and goes only once the new process has said it is ready. It wraps cloudflare/tableflip, which
// passes the sockets as inherited descriptors, so that no connection is refused at any moment:
// the listening sockets are never closed, only shared, and connections that arrive while both
// processes hold them wait in the kernel's backlog for whichever accepts first.
//
// tableflip re-executes os.Args[0] with the same arguments; relayd must therefore be started by
// the installed path (ROOT/bin/relayd, as the systemd unit does), not through a symlink or a
// copy elsewhere, or an upgrade would start the old build again.
//
// The new process decides itself whether it is fit to take over, before it says so: it checks
// that its own version is the one the caller of Upgrade expected (passed in EnvExpectVersion)
// and whatever health check the relay gives Ready. If it is not, it exits, and the old process
// goes on serving as if nothing had happened. Everything else the two processes share (the
// spool, the tracking journal) is handed over by those packages' own locks.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/coreos/go-systemd/v22/daemon"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
)

// EnvExpectVersion carries, from the old process to the new, the file version the new build
// must report; a build that reports another one does not take over.
const EnvExpectVersion = "RELAYD_UPGRADE_VERSION"

// EnvHealthTimeout carries, from the old process to the new, how long the new one may wait for
// its components to be healthy (a Go duration).
const EnvHealthTimeout = "RELAYD_UPGRADE_HEALTH_TIMEOUT"

// EnvHealthy carries, from the old process to the new, the components that were healthy in the
// old one (comma-separated): the new one must bring those up healthy before it takes over, and
// is not held back by one the old one could not run either.
const EnvHealthy = "RELAYD_UPGRADE_HEALTHY"

// DefaultTimeout bounds how long a new process may take to become ready before it is killed
// and the upgrade fails.
const DefaultTimeout = 60 * time.Second

// ErrVersion is returned by Ready in a new process whose version is not the expected one.
var ErrVersion = errors.New("the new relayd reports another version than expected")

// Upgrader is one relayd process's side of upgrades: the one it came from, if any, and the one
// it may start.
type Upgrader struct {
	upg  *tableflip.Upgrader
	root layout.Root
	mu   sync.Mutex // one Upgrade at a time, and the environment with it

	// What the old process passed (EnvExpectVersion, EnvHealthTimeout, EnvHealthy), read at New
	// and taken out of the environment, so that this process's own upgrades do not pass it on.
	expect, health, healthy string

	ready atomic.Bool // this process told the old one it serves
}

// New prepares the upgrader of a relayd on root. Only one may exist in a process.
func New(root layout.Root, timeout time.Duration) (*Upgrader, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := os.MkdirAll(root.Run(), 0o700); err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: timeout, PIDFile: root.PIDFile()})
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	u := &Upgrader{upg: upg, root: root}
	if upg.HasParent() {
		u.expect, u.health, u.healthy = os.Getenv(EnvExpectVersion), os.Getenv(EnvHealthTimeout), os.Getenv(EnvHealthy)
	}
	for _, k := range []string{EnvExpectVersion, EnvHealthTimeout, EnvHealthy} {
		os.Unsetenv(k)
	}
	return u, nil
}

// Successor reports whether this process was started by an upgrade, beside the relayd it
// replaces.
func (u *Upgrader) Successor() bool { return u.upg.HasParent() }

// Listen returns the SMTP listener: the old process's when there is one, else a new one.
func (u *Upgrader) Listen(addr string) (net.Listener, error) {
	ln, err := u.upg.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// ListenControl returns the control socket's listener: the old process's when there is one,
// else a new one made by control.Listen. The socket file is unlinked only by Stop, never when
// a process closes its listener at the end of an upgrade.
func (u *Upgrader) ListenControl() (net.Listener, error) {
	path := u.root.ControlSocket()
	return u.upg.ListenWithCallback("unix", path, func(string, string) (net.Listener, error) {
		return control.Listen(path)
	})
}

// Ready says that this process serves: in a new process it first checks that its version is
// the expected one, then it writes ROOT/run/relayd.pid, tells systemd its main PID (Type=notify
// units), and lets the old process go.
func (u *Upgrader) Ready() error {
	if want := u.expect; want != "" && want != stamp.Version() {
		return fmt.Errorf("%w: %s, expected %s", ErrVersion, stamp.Version(), want)
	}
	if err := u.upg.Ready(); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	u.ready.Store(true)
	// Outside systemd (no NOTIFY_SOCKET) this does nothing.
	daemon.SdNotify(false, fmt.Sprintf("MAINPID=%d\n%s", os.Getpid(), daemon.SdNotifyReady))
	return nil
}

// HealthTimeout returns how long a new process may wait for its components to be healthy: what
// the old one passed, else def.
func (u *Upgrader) HealthTimeout(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(u.health); err == nil && d > 0 {
		return d
	}
	return def
}

// Healthy returns the components a new process must bring up healthy: those the old one
// named, all of them (nil) in a process that is not a successor.
func (u *Upgrader) Healthy() (names []string, all bool) {
	if !u.Successor() {
		return nil, true
	}
	if u.healthy == "" {
		return nil, false
	}
	return strings.Split(u.healthy, ","), false
}

// Upgrade starts the installed relayd and waits until it is ready, or has failed (exited,
// not ready within the timeout, or ctx ended). expect, when not empty, is the version the new
// build must report; health, when not 0, how long it may wait to be healthy; healthy, the
// components that are healthy here. On success Exit is closed: this process must drain and exit.
//
// The two values reach the new process in its environment, the one channel tableflip gives;
// the lock keeps them to one upgrade at a time.
func (u *Upgrader) Upgrade(ctx context.Context, expect string, health time.Duration, healthy []string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	os.Setenv(EnvHealthy, strings.Join(healthy, ","))
	defer os.Unsetenv(EnvHealthy)
	if expect != "" {
		os.Setenv(EnvExpectVersion, expect)
		defer os.Unsetenv(EnvExpectVersion)
	}
	if health > 0 {
		os.Setenv(EnvHealthTimeout, health.String())
		defer os.Unsetenv(EnvHealthTimeout)
	}
	// A process that took over may upgrade again only once the one it replaced is gone.
	if err := u.upg.WaitForParent(ctx); err != nil {
		return fmt.Errorf("upgrade: the previous relayd: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- u.upg.Upgrade() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
		return nil
	case <-ctx.Done():
		// tableflip goes on waiting for the child up to its own timeout; it kills the child then.
		return fmt.Errorf("upgrade: %w", ctx.Err())
	}
}

// Exit is closed once a new process has taken over.
func (u *Upgrader) Exit() <-chan struct{} { return u.upg.Exit() }

// Stop ends the possibility of an upgrade; when no upgrade happened, the relay is going away
// and the control socket file is removed. A successor that never became ready leaves the file
// alone: the old process still serves on it (tableflip would unlink every socket it holds).
func (u *Upgrader) Stop() {
	if u.Successor() && !u.ready.Load() {
		return
	}
	u.upg.Stop()
}
