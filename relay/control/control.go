// Package control is relayd's control socket: the wire types, and a client that hotfix and
// `relayd ctl` use to ask a running relay for its status, to list or flush its queue, to restart a
// component (the tracking plugin) or switch it off and on, and to shut the relay down.
//
// The protocol is one JSON Request per line and one JSON Response per line over a Unix socket
// (ROOT/run/relayd.sock) that only the relay's owner may open.
package control

import (
	"context"
	"time"
)

// Operations.
const (
	OpStatus           = "status"
	OpQueue            = "queue"
	OpFlush            = "flush"
	OpRestartComponent = "restart-component"
	OpSetComponent     = "set-component" // enable or disable a component at run time
	OpShutdown         = "shutdown"
)

// Request is one command to the relay.
type Request struct {
	Op      string `json:"op"`
	Name    string `json:"name,omitempty"`    // component, for restart-component and set-component
	Enabled *bool  `json:"enabled,omitempty"` // for set-component
	Limit   int    `json:"limit,omitempty"`   // for queue: at most this many entries (0: all)
}

// Response is the relay's answer. Error is empty on success.
type Response struct {
	Error     string           `json:"error,omitempty"`
	Status    *Status          `json:"status,omitempty"`
	Queue     []QueueEntry     `json:"queue,omitempty"`
	Component *ComponentStatus `json:"component,omitempty"` // after restart-component / set-component
}

// Status is a snapshot of a running relay.
type Status struct {
	Version    string            `json:"version"` // relayd's file version
	PID        int               `json:"pid"`
	Started    time.Time         `json:"started"`
	Uptime     float64           `json:"uptime_seconds"`
	Listen     string            `json:"listen"`
	NextHop    string            `json:"next_hop,omitempty"`
	QueueDepth int               `json:"queue_depth"`
	Counters   map[string]uint64 `json:"counters"` // received, delivered, deferred, bounced, refused, ...
	Components []ComponentStatus `json:"components"`
	// Installed is the version of the installed bin/relayd when it differs from the running
	// relay's (see ComponentStatus.Installed).
	Installed string `json:"installed,omitempty"`

	Oldest     time.Time `json:"oldest,omitzero"` // when the oldest queued message was received
	SpoolBytes int64     `json:"spool_bytes"`     // size of the spool's segment files
}

// Component health values.
const (
	HealthHealthy    = "healthy"
	HealthStarting   = "starting"
	HealthRestarting = "restarting" // crashed; waiting out the restart delay
	HealthDisabled   = "disabled"   // switched off by the operator
	HealthFailed     = "failed"     // cannot be started (missing, checksum mismatch, escalation exhausted)
	// HealthCrashLooping is a component that failed repeatedly within its failure window; it may
	// be serving at this moment, but it is not healthy. The detail gives the count.
	HealthCrashLooping = "crash-looping"
)

// ComponentStatus describes one supervised component of the relay.
type ComponentStatus struct {
	Name     string    `json:"name"`    // e.g. tracking
	Binary   string    `json:"binary"`  // path of the executable
	Version  string    `json:"version"` // four-part file version the running build reports
	Protocol int       `json:"protocol,omitempty"`
	Enabled  bool      `json:"enabled"`
	Health   string    `json:"health"`
	Detail   string    `json:"detail,omitempty"` // why it is not healthy
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	Crashes  int       `json:"crashes"`
	LastExit string    `json:"last_exit,omitempty"`
	Pending  int       `json:"pending"` // events kept but not yet acknowledged by the plugin
	// Installed is the version of the component's installed file when it differs from the
	// running build: a restart is pending. `relayd ctl status` fills it from the root's
	// installed-files database.
	Installed string `json:"installed,omitempty"`
	Written   uint64 `json:"written"` // events the plugin has written and acknowledged
	// CrashSignatures are the component's crashes by signature, kept across restarts.
	CrashSignatures []CrashSignature `json:"crash_signatures,omitempty"`
}

// CrashSignature is how often one build of a component crashed with one signature (the panic
// kind and the innermost frame in relayfix's code), and when first and last.
type CrashSignature struct {
	Signature string    `json:"signature"`
	Program   string    `json:"program"`
	Build     string    `json:"build"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// QueueEntry is one queued message.
type QueueEntry struct {
	QueueID    string    `json:"queue_id"`
	Sender     string    `json:"sender"`
	Recipients []string  `json:"recipients"`
	Size       int64     `json:"size"`
	Received   time.Time `json:"received"`
	Attempts   int       `json:"attempts"`
	NextTry    time.Time `json:"next_try,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
}

// Component is a supervised part of the relay (the tracking plugin) that the control socket can
// restart, or switch off and on, while the relay keeps carrying mail.
type Component interface {
	// Name is the component's name on the control socket, e.g. "tracking".
	Name() string
	// Status reports the component's current state.
	Status() ComponentStatus
	// Restart starts the currently installed build, waits for its handshake and version, switches
	// over to it and retires the old process. It returns the new state, or why it failed.
	Restart(ctx context.Context) (ComponentStatus, error)
	// SetEnabled switches the component on or off at run time.
	SetEnabled(ctx context.Context, on bool) (ComponentStatus, error)
}
