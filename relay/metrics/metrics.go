// Package metrics is relayd's Prometheus instrumentation (prometheus/client_golang), served at
// /metrics when relayd runs with --metrics-listen.
//
// Almost everything is read at scrape time rather than counted as it happens: the collector asks
// the relay for the same status snapshot the control socket serves (counters of the intake and
// the queue, queue depth and oldest message, spool size, each component's build and health) and
// reads what hotfix installed, then turns them into metrics. The mail path therefore carries no
// instrumentation of its own, and the numbers on /metrics, on the status page and in `relayd ctl
// status` cannot disagree. Only the two latency histograms need a measurement at the event; the
// intake and the delivery workers report those through a function each (ObserveTransaction,
// ObserveDelivery), which costs a clock read and an atomic add.
//
// Names follow Prometheus' conventions: relayfix_ prefix, base units (seconds, bytes), counters
// ending in _total, 1-valued _info gauges for builds and versions.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"relayfix/relay/control"
	"relayfix/relay/installed"
)

// Source is the relay, read at every scrape.
type Source interface {
	Status() control.Status
}

// Component names as the metrics label them.
const (
	RelaydComponent   = "relayd"
	TrackingComponent = "tracking"
)

// Metrics is the registry of one relay.
type Metrics struct {
	reg         *prometheus.Registry
	transaction prometheus.Histogram
	delivery    prometheus.Histogram

	mu        sync.Mutex
	requested map[string]*atomic.Uint64 // restarts asked for through the control socket, by component
}

// New returns the metrics of the relay src, whose installed files inst describes (nil: none).
func New(src Source, inst installed.Reader) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		transaction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relayfix_smtp_transaction_duration_seconds",
			Help:    "Time from MAIL FROM to the 250 that acknowledges the stored message, per accepted message.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relayfix_delivery_duration_seconds",
			Help:    "Duration of one delivery attempt of a message to the next hop, connection included when one was opened.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		requested: make(map[string]*atomic.Uint64),
	}
	m.reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		m.transaction,
		m.delivery,
		&collector{m: m, src: src, inst: inst},
	)
	return m
}

// Registry returns the registry, for tests and for serving it elsewhere.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveTransaction records one SMTP transaction's latency.
func (m *Metrics) ObserveTransaction(d time.Duration) { m.transaction.Observe(d.Seconds()) }

// ObserveDelivery records one delivery attempt's duration.
func (m *Metrics) ObserveDelivery(d time.Duration) { m.delivery.Observe(d.Seconds()) }

// WrapComponent returns c with its restarts counted: a restart asked for (hotfix, `relayd ctl
// restart-component`) is seen only on its way in, while a crash is counted by the component.
func (m *Metrics) WrapComponent(c control.Component) control.Component {
	m.mu.Lock()
	n := m.requested[c.Name()]
	if n == nil {
		n = new(atomic.Uint64)
		m.requested[c.Name()] = n
	}
	m.mu.Unlock()
	return &countedComponent{Component: c, restarts: n}
}

func (m *Metrics) requestedRestarts(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.requested[name]; n != nil {
		return n.Load()
	}
	return 0
}

type countedComponent struct {
	control.Component
	restarts *atomic.Uint64
}

func (c *countedComponent) Restart(ctx context.Context) (control.ComponentStatus, error) {
	c.restarts.Add(1)
	return c.Component.Restart(ctx)
}

var (
	descReceived  = prometheus.NewDesc("relayfix_messages_received_total", "Messages accepted over SMTP and stored in the spool (bounces the relay generates included).", nil, nil)
	descDelivered = prometheus.NewDesc("relayfix_messages_delivered_total", "Deliveries the next hop accepted, one per recipient.", nil, nil)
	descDeferred  = prometheus.NewDesc("relayfix_messages_deferred_total", "Delivery attempts that failed temporarily and will be retried, one per recipient.", nil, nil)
	descFailed    = prometheus.NewDesc("relayfix_messages_failed_total", "Recipients given up on, by reason: permanent (a 5xx answer) or expired (the queue lifetime ran out).", []string{"reason"}, nil)
	descBounced   = prometheus.NewDesc("relayfix_messages_bounced_total", "Delivery status notifications queued back to senders.", nil, nil)
	descRefused   = prometheus.NewDesc("relayfix_messages_refused_total", "Mail the intake refused, by reason: relay_denied (MAIL or RCPT from a client outside the allowed networks), too_many_connections (a connection over the limit), transaction_failed (too big, broken off, or not stored).", []string{"reason"}, nil)
	descSessions  = prometheus.NewDesc("relayfix_smtp_sessions_total", "SMTP connections accepted.", nil, nil)
	descQueue     = prometheus.NewDesc("relayfix_queue_messages", "Messages in the queue (waiting for delivery or for a retry).", nil, nil)
	descOldest    = prometheus.NewDesc("relayfix_queue_oldest_message_age_seconds", "Age of the oldest queued message; 0 when the queue is empty.", nil, nil)
	descSpool     = prometheus.NewDesc("relayfix_spool_bytes", "Size of the spool's segment files.", nil, nil)
	descRestarts  = prometheus.NewDesc("relayfix_tracking_restarts_total", "Restarts of the message tracking plugin, by reason: crash (it died and the relay restarted it) or requested (hotfix or relayd ctl restart-component).", []string{"reason"}, nil)
	descBacklog   = prometheus.NewDesc("relayfix_tracking_journal_backlog_events", "Tracking events journaled by the relay and not yet acknowledged by the plugin.", nil, nil)
	descWritten   = prometheus.NewDesc("relayfix_tracking_events_written_total", "Tracking events the plugin has written to the tracking log and acknowledged (one log record per recipient).", nil, nil)
	descComponent = prometheus.NewDesc("relayfix_component_info", "The build each component runs and its state (healthy, starting, restarting, disabled, failed; running for relayd).", []string{"component", "version", "state"}, nil)
	descPending   = prometheus.NewDesc("relayfix_component_restart_pending", "1 when a component runs another build than the file installed for it: a restart is needed for an installed hotfix to take effect.", []string{"component"}, nil)
	descProduct   = prometheus.NewDesc("relayfix_product_info", "The installed product version and service pack level.", []string{"version", "service_pack"}, nil)
	descInstall   = prometheus.NewDesc("relayfix_install_database_readable", "1 when the installed-files database and product file could be read at this scrape.", nil, nil)
)

// collector reads the relay at scrape time.
type collector struct {
	m    *Metrics
	src  Source
	inst installed.Reader
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descDelivered, descDeferred, descFailed, descBounced,
		descRefused, descSessions, descQueue, descOldest, descSpool, descRestarts, descBacklog, descWritten,
		descComponent, descPending, descProduct, descInstall} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := st.Counters
	counter(descReceived, n["received"])
	counter(descDelivered, n["delivered"])
	counter(descDeferred, n["deferred"])
	counter(descFailed, n["failed"], "permanent")
	counter(descFailed, n["expired"], "expired")
	counter(descBounced, n["bounced"])
	counter(descRefused, n["refused"], "relay_denied")
	counter(descRefused, n["overload"], "too_many_connections")
	counter(descRefused, n["rejected"], "transaction_failed")
	counter(descSessions, n["connections"])
	gauge(descQueue, float64(st.QueueDepth))
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	gauge(descOldest, age)
	gauge(descSpool, float64(st.SpoolBytes))

	var snap installed.Snapshot
	readable := 1.0
	if c.inst != nil {
		var err error
		if snap, err = c.inst.Read(); err != nil {
			readable = 0
		}
	}
	gauge(descInstall, readable)
	if snap.Product.Version != "" {
		gauge(descProduct, 1, snap.Product.Version, strconv.Itoa(snap.Product.ServicePack))
	}

	gauge(descComponent, 1, RelaydComponent, st.Version, "running")
	gauge(descPending, bool01(snap.RestartPending(RelaydComponent, st.Version)), RelaydComponent)
	for _, cs := range st.Components {
		gauge(descComponent, 1, cs.Name, cs.Version, cs.Health)
		running := cs.Version
		if cs.PID == 0 {
			running = "" // nothing runs: the version is the last one seen
		}
		gauge(descPending, bool01(snap.RestartPending(cs.Name, running)), cs.Name)
		if cs.Name == TrackingComponent {
			counter(descRestarts, uint64(cs.Crashes), "crash")
			counter(descRestarts, c.m.requestedRestarts(cs.Name), "requested")
			gauge(descBacklog, float64(cs.Pending))
			counter(descWritten, cs.Written)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
