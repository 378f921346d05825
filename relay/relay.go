// Package relay assembles relayd: the SMTP intake (relay/smtpd), the durable spool
// (relay/spool), the queue manager (relay/queue), the delivery workers (relay/courier) and the
// control socket (relay/control), around one install root.
//
// The wiring used by cmd/relayd is:
//
//	r, err := relay.New(relay.Config{Root: root, Listen: "127.0.0.1:2525", NextHop: "10.0.0.2:25", ...})
//	src := r.Messages()            // track.MessageSource, usable before Run
//	r.SetRecorder(rec)             // before Run; nil means track.Discard
//	r.AddComponent(comp)           // before Run; served on the control socket
//	err = r.Run(ctx)               // serves until ctx ends or a shutdown request, then drains
//
// New reads the spool back, so every message that was acknowledged before a crash is queued
// again before Run starts delivering.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
	"relayfix/relay/courier"
	"relayfix/relay/metrics"
	"relayfix/relay/queue"
	"relayfix/relay/smtpd"
	"relayfix/relay/spool"
	"relayfix/relay/track"
)

// Defaults.
const (
	DefaultListen   = "127.0.0.1:2525"
	DefaultWorkers  = 16
	DefaultMaxSize  = 32 << 20
	DefaultLifetime = 5 * 24 * time.Hour
)

// DefaultAllow is the client networks allowed to relay when none are configured: loopback.
func DefaultAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// Config configures a relay. Zero values take the defaults.
type Config struct {
	Root     layout.Root
	Listen   string         // SMTP listen address (DefaultListen)
	NextHop  string         // host:port every message is relayed to; no DNS lookups then (else MX)
	Allow    []netip.Prefix // client networks allowed to relay (DefaultAllow)
	Hostname string         // our name in greetings and headers (os.Hostname)

	MaxSize       int64         // largest message, bytes (DefaultMaxSize)
	MaxRecipients int           // per message (1000)
	MaxConns      int           // simultaneous SMTP connections (2000)
	ReadTimeout   time.Duration // per read of the SMTP intake (5 minutes)
	// TransactionTimeout bounds one SMTP transaction from MAIL to the end of its data (1 hour).
	TransactionTimeout time.Duration
	WriteTimeout       time.Duration
	TLSCert            string // PEM files; both set enables STARTTLS
	TLSKey             string

	Workers   int           // concurrent delivery connections (DefaultWorkers)
	Lifetime  time.Duration // queue lifetime before a message bounces (DefaultLifetime)
	RetryBase time.Duration // first retry delay (1 minute)
	RetryMax  time.Duration // longest retry delay (1 hour)
	// DeliveryTimeout bounds each command and the connect to the next hop (1 minute).
	DeliveryTimeout time.Duration
	// DrainTimeout bounds how long a shutdown waits for open transactions and deliveries under
	// way (30 seconds); deliveries still running then are cut off and tried again later.
	DrainTimeout time.Duration

	// Resolver finds the mail exchangers of recipient domains when there is no next hop
	// (net.DefaultResolver); MXPort is their SMTP port (25).
	Resolver courier.Resolver
	MXPort   string
	// Courier makes each delivery worker's Deliverer. nil: a courier.Courier to NextHop, or a
	// courier.Router to the recipients' mail exchangers when there is no next hop.
	Courier func() courier.Deliverer

	Recorder   track.Recorder // nil: track.Discard
	Components []control.Component
	Logger     *slog.Logger

	// MetricsListen is the address of the read-only HTTP listener that serves /metrics, the
	// status page (/) and /healthz; empty: none. A bare port binds loopback.
	MetricsListen string
}

// Relay is one relayd instance.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	spool   *spool.Spool
	queue   *queue.Queue
	smtp    *smtpd.Server
	started time.Time

	mu         sync.Mutex
	components []control.Component
	addr       net.Addr
	shutdown   chan struct{}
	stopOnce   sync.Once
	ran        bool

	metrics  *metrics.Metrics // nil without MetricsListen
	stopping atomic.Bool      // Run is draining
}

// New opens the relay's spool and rebuilds its queue.
func New(cfg Config) (*Relay, error) {
	if cfg.Root == "" {
		return nil, errors.New("relay: no install root")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if len(cfg.Allow) == 0 {
		cfg.Allow = DefaultAllow()
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Hostname = h
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Courier == nil {
		cfg.Courier = defaultCourier(cfg)
	}
	sp, msgs, err := spool.Open(cfg.Root.Spool(), spool.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if len(msgs) > 0 {
		cfg.Logger.Info("spool read back", "messages", len(msgs))
	}

	q := queue.New(queue.Config{
		Spool:     sp,
		Recorder:  cfg.Recorder,
		Lifetime:  cfg.Lifetime,
		RetryBase: cfg.RetryBase,
		RetryMax:  cfg.RetryMax,
		Hostname:  cfg.Hostname,
		Logger:    cfg.Logger,
	}, msgs)
	if len(msgs) > 0 {
		// Reading a big spool back leaves garbage the size of its envelopes; give it back now
		// rather than carry it as resident memory.
		msgs = nil
		debug.FreeOSMemory()
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			sp.Close()
			return nil, fmt.Errorf("relay: load TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	r := &Relay{
		cfg:        cfg,
		log:        cfg.Logger,
		spool:      sp,
		queue:      q,
		components: append([]control.Component(nil), cfg.Components...),
		shutdown:   make(chan struct{}),
	}
	r.newMetrics()
	r.smtp = smtpd.New(smtpd.Config{
		Hostname:           cfg.Hostname,
		Allow:              cfg.Allow,
		MaxSize:            cfg.MaxSize,
		MaxRecipients:      cfg.MaxRecipients,
		MaxConns:           cfg.MaxConns,
		ReadTimeout:        cfg.ReadTimeout,
		TransactionTimeout: cfg.TransactionTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		TLS:                tlsConf,
		Queue:              q,
		Logger:             cfg.Logger,

		ObserveTransaction: r.observeTransaction(),
	})
	return r, nil
}

// defaultCourier delivers to the configured next hop, or else to the recipients' mail
// exchangers.
func defaultCourier(cfg Config) func() courier.Deliverer {
	if cfg.NextHop == "" {
		return func() courier.Deliverer {
			return &courier.Router{Resolver: cfg.Resolver, Port: cfg.MXPort, Helo: cfg.Hostname, Timeout: cfg.DeliveryTimeout}
		}
	}
	return func() courier.Deliverer {
		return &courier.Courier{NextHop: cfg.NextHop, Helo: cfg.Hostname, Timeout: cfg.DeliveryTimeout}
	}
}

// Messages returns the queue as a track.MessageSource: a message's properties while it is
// queued, track.ErrNoMessage once it has left.
func (r *Relay) Messages() track.MessageSource { return r.queue }

// SetRecorder sets the tracking recorder (nil: track.Discard).
func (r *Relay) SetRecorder(rec track.Recorder) { r.queue.SetRecorder(rec) }

// AddComponent adds a supervised component to the control socket.
func (r *Relay) AddComponent(c control.Component) {
	if r.metrics != nil {
		c = r.metrics.WrapComponent(c)
	}
	r.mu.Lock()
	r.components = append(r.components, c)
	r.mu.Unlock()
}

// Addr returns the SMTP listen address once Run is listening, else nil.
func (r *Relay) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Run serves SMTP, delivers, and answers the control socket until ctx is done or a shutdown
// is requested; then it stops accepting, lets open transactions finish, stops the workers after
// their current message, and closes the spool.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.ran {
		r.mu.Unlock()
		return errors.New("relay: Run called twice")
	}
	r.ran = true
	r.mu.Unlock()
	defer r.spool.Close()

	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("relay: listen %s: %w", r.cfg.Listen, err)
	}
	cln, err := control.Listen(r.cfg.Root.ControlSocket())
	if err != nil {
		ln.Close()
		return fmt.Errorf("relay: %w", err)
	}
	httpSrv, err := r.listenHTTP()
	if err != nil {
		ln.Close()
		cln.Close()
		return fmt.Errorf("relay: %w", err)
	}
	defer stopHTTP(httpSrv)
	r.mu.Lock()
	r.addr = ln.Addr()
	r.started = time.Now()
	r.mu.Unlock()
	r.log.Info("relayd listening", "smtp", ln.Addr().String(), "next_hop", r.cfg.NextHop,
		"control", r.cfg.Root.ControlSocket(), "queued", r.queue.Len(), "version", stamp.Version())

	var wg sync.WaitGroup
	smtpErr := make(chan error, 1)
	wg.Go(func() { smtpErr <- r.smtp.Serve(ln) })

	qctx, stopQueue := context.WithCancel(context.Background())
	wg.Go(func() { r.queue.Run(qctx) })

	// Workers deliver while the SMTP drain lasts and then take no more messages; deliveries
	// under way get what is left of the drain's time, and are cut off after it.
	wctx, stopWorkers := context.WithCancel(context.Background())
	deliveries, cutDeliveries := context.WithCancel(context.Background())
	defer cutDeliveries()
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Go(func() { r.worker(wctx, deliveries) })
	}

	cctx, stopControl := context.WithCancel(context.Background())
	wg.Go(func() {
		if err := control.Serve(cctx, cln, r); err != nil {
			r.log.Error("control socket stopped", "err", err)
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
		r.log.Info("shutting down", "reason", context.Cause(ctx))
	case <-r.shutdown:
		r.log.Info("shutting down", "reason", "shutdown request")
	case err := <-smtpErr:
		runErr = fmt.Errorf("relay: smtp server: %w", err)
	}
	r.stopping.Store(true)

	dctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	if err := r.smtp.Shutdown(dctx); err != nil {
		r.log.Warn("smtp drain cut short", "err", err)
	}
	stopWorkers()
	stop := context.AfterFunc(dctx, func() {
		r.log.Warn("deliveries cut short by the shutdown; they will be tried again")
		cutDeliveries()
	})
	workers.Wait()
	stop()
	cancel()
	stopQueue()
	stopControl()
	wg.Wait()
	r.log.Info("relayd stopped", "queued", r.queue.Len())
	return runErr
}

// worker hands messages to its own Deliverer until ctx ends. A delivery runs on deliveries,
// which ends only when a shutdown has waited long enough for it: a delivery cut off is a
// temporary failure, so the message stays queued.
func (r *Relay) worker(ctx, deliveries context.Context) {
	k := r.cfg.Courier()
	defer k.Close()
	for {
		d, err := r.queue.Next(ctx, 5*time.Second)
		if ctx.Err() != nil {
			if d != nil {
				r.queue.Release(d)
			}
			return
		}
		if err != nil {
			r.log.Error("delivery: cannot read a queued message", "err", err)
			continue
		}
		if d == nil {
			k.Close() // idle: do not hold the next hop's connection open
			continue
		}
		start := time.Now()
		results := k.Deliver(deliveries, d.Sender, d.Recipients, d.Body)
		if r.metrics != nil {
			r.metrics.ObserveDelivery(time.Since(start))
		}
		r.queue.Done(d, results)
	}
}

// Status implements control.Handler.
func (r *Relay) Status() control.Status {
	r.mu.Lock()
	comps := append([]control.Component(nil), r.components...)
	started := r.started
	addr := ""
	if r.addr != nil {
		addr = r.addr.String()
	}
	r.mu.Unlock()
	counters := r.queue.Counters()
	maps.Copy(counters, r.smtp.Counters())
	st := control.Status{
		Version:    stamp.Version(),
		PID:        os.Getpid(),
		Started:    started.UTC(),
		Uptime:     time.Since(started).Seconds(),
		Listen:     addr,
		NextHop:    r.cfg.NextHop,
		QueueDepth: r.queue.Len(),
		Counters:   counters,
		Components: []control.ComponentStatus{},
		Oldest:     r.queue.Oldest().UTC(),
		SpoolBytes: spoolBytes(r.cfg.Root.Spool()),
	}
	for _, c := range comps {
		st.Components = append(st.Components, c.Status())
	}
	return st
}

// Queue implements control.Handler.
func (r *Relay) Queue(limit int) []control.QueueEntry {
	list := r.queue.List(limit)
	out := make([]control.QueueEntry, len(list))
	for i, e := range list {
		out[i] = control.QueueEntry{
			QueueID: e.ID, Sender: e.Sender, Recipients: e.Recipients, Size: e.Size, Received: e.Received,
			Attempts: e.Attempts, NextTry: e.NextTry, LastError: e.LastError,
		}
	}
	return out
}

// Flush implements control.Handler.
func (r *Relay) Flush() int { return r.queue.Flush() }

// Component implements control.Handler.
func (r *Relay) Component(name string) (control.Component, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.components {
		if c.Name() == name {
			return c, true
		}
	}
	return nil, false
}

// Shutdown implements control.Handler: it asks Run to drain and return.
func (r *Relay) Shutdown() {
	r.stopOnce.Do(func() { close(r.shutdown) })
}
