package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with the hidden --pprof flag
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/flagfile"
	"relayfix/relay"
)

// daemonOptions are the flags of the relay itself.
type daemonOptions struct {
	root *rootOptions

	listen, nextHop, hostname string
	allow                     []string
	maxSize                   int64
	maxRecipients, maxConns   int
	workers                   int
	lifetime                  time.Duration
	retryBase, retryMax       time.Duration
	readTimeout, writeTimeout time.Duration
	transactionTimeout        time.Duration
	deliveryTimeout           time.Duration
	drainTimeout              time.Duration
	tlsCert, tlsKey           string
	logLevel                  string
	pprof                     string
	metricsListen             string
}

func (d *daemonOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&d.listen, "listen", relay.DefaultListen, "SMTP listen address")
	f.StringVar(&d.nextHop, "next-hop", "", "relay all mail to this host:port (no DNS lookups); without it mail goes to each recipient domain's MX")
	f.StringSliceVar(&d.allow, "allow", []string{"127.0.0.0/8", "::1/128"}, "client networks allowed to relay, comma-separated CIDRs")
	f.StringVar(&d.hostname, "hostname", "", "name in the greeting and Received: headers (default: the host name)")
	f.Int64Var(&d.maxSize, "max-size", relay.DefaultMaxSize, "largest message accepted, bytes (SIZE)")
	f.IntVar(&d.maxRecipients, "max-recipients", 1000, "most recipients per message")
	f.IntVar(&d.maxConns, "max-conns", 2000, "most simultaneous SMTP connections")
	f.IntVar(&d.workers, "workers", relay.DefaultWorkers, "concurrent delivery connections to the next hop")
	f.DurationVar(&d.lifetime, "lifetime", relay.DefaultLifetime, "queue lifetime: bounce a message not delivered after this long")
	f.DurationVar(&d.retryBase, "retry-base", time.Minute, "first retry delay after a temporary failure (doubles per attempt)")
	f.DurationVar(&d.retryMax, "retry-max", time.Hour, "longest retry delay")
	f.DurationVar(&d.readTimeout, "read-timeout", 5*time.Minute, "SMTP intake: longest wait for one read from a client (a slow but steady sender is never cut)")
	f.DurationVar(&d.transactionTimeout, "transaction-timeout", time.Hour, "SMTP intake: longest time for one transaction, from MAIL to the end of its data")
	f.DurationVar(&d.writeTimeout, "write-timeout", time.Minute, "SMTP intake write timeout")
	f.DurationVar(&d.deliveryTimeout, "delivery-timeout", time.Minute, "timeout for each command to the next hop")
	f.DurationVar(&d.drainTimeout, "drain-timeout", 30*time.Second, "how long a shutdown waits for open transactions and deliveries under way (then they are cut off and retried later)")
	f.StringVar(&d.tlsCert, "tls-cert", "", "PEM certificate for STARTTLS (with --tls-key)")
	f.StringVar(&d.tlsKey, "tls-key", "", "PEM private key for STARTTLS")
	f.StringVar(&d.logLevel, "log-level", "info", "log level: debug (one line per SMTP session), info, warn, error")
	f.StringVar(&d.metricsListen, "metrics-listen", "", "serve /metrics (Prometheus), a read-only status page (/) and /healthz on this address, e.g. 127.0.0.1:9465 (a bare :PORT binds loopback; default off)")
	f.StringVar(&d.pprof, "pprof", "", "serve net/http/pprof on this loopback address")
	f.MarkHidden("pprof")
}

// config checks the settings (see settings) and returns the relay's configuration.
func (d *daemonOptions) config(flags *pflag.FlagSet) (relay.Config, error) {
	s := &settings{flags: flags}
	s.address("listen", d.listen, false)
	if d.nextHop != "" {
		s.address("next-hop", d.nextHop, true)
	}
	allow := s.prefixes("allow", d.allow)
	if s.err == nil && len(allow) == 0 {
		s.fail("allow", "no client network given; relayd never relays for everyone")
	}
	s.atLeast("max-size", d.maxSize, 1)
	s.atLeast("max-recipients", int64(d.maxRecipients), 1)
	s.atLeast("max-conns", int64(d.maxConns), 1)
	s.atLeast("workers", int64(d.workers), 1)
	s.positive("lifetime", d.lifetime)
	s.positive("retry-base", d.retryBase)
	s.notBelow("retry-max", d.retryMax, "retry-base", d.retryBase)
	s.positive("read-timeout", d.readTimeout)
	s.positive("transaction-timeout", d.transactionTimeout)
	s.positive("write-timeout", d.writeTimeout)
	s.positive("delivery-timeout", d.deliveryTimeout)
	s.positive("drain-timeout", d.drainTimeout)
	if d.pprof != "" {
		s.address("pprof", d.pprof, false)
	}
	if s.err != nil {
		return relay.Config{}, s.err
	}
	if d.metricsListen != "" {
		if _, err := relay.MetricsAddress(d.metricsListen); err != nil {
			return relay.Config{}, exitcode.Usagef("--metrics-listen: %v", err)
		}
	}
	if (d.tlsCert == "") != (d.tlsKey == "") {
		return relay.Config{}, exitcode.Usagef("--tls-cert and --tls-key go together")
	}
	return relay.Config{
		Root:               d.root.Root(),
		Listen:             d.listen,
		NextHop:            d.nextHop,
		Allow:              allow,
		Hostname:           d.hostname,
		MaxSize:            d.maxSize,
		MaxRecipients:      d.maxRecipients,
		MaxConns:           d.maxConns,
		ReadTimeout:        d.readTimeout,
		TransactionTimeout: d.transactionTimeout,
		WriteTimeout:       d.writeTimeout,
		TLSCert:            d.tlsCert,
		TLSKey:             d.tlsKey,
		Workers:            d.workers,
		Lifetime:           d.lifetime,
		RetryBase:          d.retryBase,
		RetryMax:           d.retryMax,
		DeliveryTimeout:    d.deliveryTimeout,
		DrainTimeout:       d.drainTimeout,
		MetricsListen:      d.metricsListen,
	}, nil
}

func runDaemon(ctx context.Context, cmd *cobra.Command, d *daemonOptions) error {
	root := d.root.Root()
	if fi, err := os.Stat(string(root)); err == nil && !fi.IsDir() {
		return fmt.Errorf("install root %s is not a directory", root)
	}
	// ROOT/relayd.json sets what the command line did not; it cannot move the root it lives in.
	if err := flagfile.Apply(root.Config(), cmd.Flags(), "root"); err != nil {
		var ferr *flagfile.Error
		if errors.As(err, &ferr) {
			return &exitcode.UsageError{Err: err}
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(d.logLevel)); err != nil {
		return exitcode.Usagef("%s %q: want debug, info, warn or error", flagfile.Name(cmd.Flags(), "log-level"), d.logLevel)
	}
	cfg, err := d.config(cmd.Flags())
	if err != nil {
		return err
	}
	for _, check := range d.root.checks {
		if err := check(cmd.Flags()); err != nil {
			return err
		}
	}
	logger := slog.New(slog.NewTextHandler(d.root.stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = logger
	raiseFileLimit(logger)
	defer ignoreHangup(logger)()
	if d.pprof != "" {
		pl, err := net.Listen("tcp", d.pprof)
		if err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
		srv := &http.Server{Handler: http.DefaultServeMux}
		go srv.Serve(pl)
		defer srv.Close()
	}
	r, err := relay.New(cfg)
	if err != nil {
		return err
	}
	for _, wire := range d.root.wiring {
		cleanup, err := wire(ctx, d.root, r)
		if err != nil {
			return err
		}
		if cleanup != nil {
			defer cleanup()
		}
	}
	return r.Run(ctx)
}

// ignoreHangup keeps SIGHUP, whose default action ends the process at once (no drain, the
// control socket left behind), from killing the relay: it is logged and otherwise ignored
// until it gets a job of its own. The returned function stops listening for it.
func ignoreHangup(log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP received and ignored: relayd stops on SIGINT or SIGTERM")
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

// raiseFileLimit lifts the soft open-files limit to the hard one: every SMTP connection and
// every delivery connection is a descriptor, and hundreds of idle clients must not starve the
// rest.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the open-files limit", "err", err)
		}
	}
}
