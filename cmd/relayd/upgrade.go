package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/stamp"
	"relayfix/relay"
	"relayfix/relay/control"
	"relayfix/relay/upgrade"
)

// addUpgradeFlags gives the daemon its live-upgrade flag.
func addUpgradeFlags(cmd *cobra.Command, o *rootOptions) {
	cmd.Flags().DurationVar(&o.upgradeTimeout, "upgrade-timeout", upgrade.DefaultTimeout,
		"live upgrade: how long the new relayd may take to be ready before it is killed and this one serves on")
}

// liveUpgrades wires relay/upgrade into the daemon: the sockets come from the upgrader, a new
// process says it is ready only once healthy, SIGHUP and `ctl upgrade` start an upgrade, and the
// old process drains once the new one took over.
type liveUpgrades struct {
	relay  *relay.Relay // set by handOver
	upg    *upgrade.Upgrader
	log    *slog.Logger
	health time.Duration // default bound of a new process's wait for its health
}

// startUpgrades takes the listeners from the upgrader (inherited from the old process when this
// one is its successor) and sets the relay's readiness and upgrade hooks.
func startUpgrades(cfg *relay.Config, o *rootOptions, log *slog.Logger) (*liveUpgrades, error) {
	if o.upgradeTimeout <= time.Second {
		return nil, exitcode.Usagef("--upgrade-timeout %v: give more than a second", o.upgradeTimeout)
	}
	upg, err := upgrade.New(cfg.Root, o.upgradeTimeout)
	if err != nil {
		return nil, err
	}
	// A new process waits for its health a little less than the old one waits for it.
	l := &liveUpgrades{upg: upg, log: log, health: o.upgradeTimeout * 3 / 4}
	if cfg.Listener, err = upg.Listen(cfg.Listen); err != nil {
		upg.Stop()
		return nil, err
	}
	if cfg.ControlListener, err = upg.ListenControl(); err != nil {
		upg.Stop()
		return nil, err
	}
	if cfg.MetricsListen != "" {
		addr, err := relay.MetricsAddress(cfg.MetricsListen)
		if err != nil {
			upg.Stop()
			return nil, exitcode.Usagef("--metrics-listen: %v", err)
		}
		if cfg.MetricsListener, err = upg.Listen(addr); err != nil {
			upg.Stop()
			return nil, err
		}
	}
	cfg.Successor = upg.Successor()
	o.successor = cfg.Successor
	cfg.Upgrade = l.upgrade
	return l, nil
}

// Stop ends the upgrader; see upgrade.Upgrader.Stop.
func (l *liveUpgrades) Stop() { l.upg.Stop() }

// upgrade runs one live upgrade and logs its outcome.
func (l *liveUpgrades) upgrade(ctx context.Context, version string, health time.Duration) error {
	l.log.Info("live upgrade: starting the installed relayd", "version", stamp.Version(), "expect", version)
	var healthy []string
	for _, c := range l.relay.Status().Components {
		if c.Health == control.HealthHealthy {
			healthy = append(healthy, c.Name)
		}
	}
	if err := l.upg.Upgrade(ctx, version, health, healthy); err != nil {
		l.log.Error("live upgrade failed; this relayd serves on", "err", err)
		return err
	}
	l.log.Info("live upgrade: the new relayd took over; draining")
	return nil
}

// handOver sets the relay's Ready hook and starts the goroutines that follow SIGHUP and the
// upgrader's exit signal; the returned function stops them.
func (l *liveUpgrades) handOver(r *relay.Relay) (stop func()) {
	l.relay = r
	r.SetReady(func(ctx context.Context) error {
		if names, all := l.upg.Healthy(); !all {
			if err := waitHealthy(ctx, r, names, l.upg.HealthTimeout(l.health)); err != nil {
				return err
			}
		}
		return l.upg.Ready()
	})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				// The systemd unit's ExecReload; the outcome is in the log.
				ctx, cancel := context.WithTimeout(context.Background(), upgrade.DefaultTimeout+5*time.Second)
				l.upgrade(ctx, "", 0)
				cancel()
			case <-l.upg.Exit():
				r.Retire()
				return
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

// waitHealthy waits until the named components of r are healthy (or switched off).
func waitHealthy(ctx context.Context, r *relay.Relay, names []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var bad []string
		for _, c := range r.Status().Components {
			if !slices.Contains(names, c.Name) {
				continue
			}
			if c.Health != control.HealthHealthy && c.Health != control.HealthDisabled {
				bad = append(bad, fmt.Sprintf("%s is %s %s", c.Name, c.Health, c.Detail))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %v: %v", timeout, bad)
		case <-t.C:
		}
	}
}
