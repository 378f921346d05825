package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"relayfix/relay/installed"
	"relayfix/relay/metrics"
	"relayfix/relay/statuspage"
	"relayfix/relay/tracklog"
)

// newMetrics sets up the metrics of r when it has a metrics listener.
func (r *Relay) newMetrics() {
	if r.cfg.MetricsListen == "" {
		return
	}
	r.metrics = metrics.New(r, installed.FromRoot(r.cfg.Root))
	for i, c := range r.components {
		r.components[i] = r.metrics.WrapComponent(c)
	}
}

// observeTransaction is the intake's latency hook: nil when there are no metrics.
func (r *Relay) observeTransaction() func(time.Duration) {
	if r.metrics == nil {
		return nil
	}
	return r.metrics.ObserveTransaction
}

// MetricsAddress resolves a --metrics-listen address: a bare port (":9465") binds loopback, so
// the listener is reachable from elsewhere only when an address says so.
func MetricsAddress(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics listen address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// listenHTTP starts the read-only HTTP listener: /metrics, the status page at / and /healthz.
// It returns nil when there is no metrics listener.
func (r *Relay) listenHTTP() (*http.Server, error) {
	if r.metrics == nil {
		return nil, nil
	}
	addr, err := MetricsAddress(r.cfg.MetricsListen)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	page := statuspage.New(statuspage.Options{
		Relay:     r,
		Installed: installed.FromRoot(r.cfg.Root),
		Tracking:  func(n int) ([]tracklog.Record, error) { return tracklog.Tail(r.cfg.Root.TrackingLog(), n) },
		Healthy:   r.healthy,
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", r.metrics.Handler())
	mux.Handle("/healthz", page.Healthz())
	mux.Handle("/", page)
	srv := &http.Server{Handler: statuspage.ReadOnly(mux), ReadHeaderTimeout: 10 * time.Second}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		r.log.Warn("the metrics and status page listener is reachable from other hosts; put it behind a reverse proxy with authentication", "http", ln.Addr().String())
	}
	r.log.Info("metrics and status page listening", "http", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return srv, nil
}

// stopHTTP closes the HTTP listener once the relay has drained.
func stopHTTP(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// healthy is /healthz: the relay takes mail while it listens and is not shutting down.
func (r *Relay) healthy() error {
	if r.Addr() == nil {
		return errors.New("not listening yet")
	}
	if r.stopping.Load() {
		return errors.New("shutting down")
	}
	return nil
}

// spoolBytes returns the size of the spool's segment files (the tracking journal, in a
// directory of its own, is not counted).
func spoolBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
