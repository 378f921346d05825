// Package trackhost runs relayd's message-tracking plugin (msgtrack): it is the relay's
// track.Recorder and the "tracking" control.Component.
//
// The relay never waits on the plugin. Record appends the event, with its properties, to a durable
// journal (ROOT/spool/tracking/*.jnl) and returns. A background flusher writes the events appended
// since its last round to the journal in one write and fsyncs them, every 50 ms (or once 1 MiB
// waits): that is the window in which a crash of relayd or of the machine can lose tracking events
// (never mail, which the spool holds). A sender goroutine reads the journal in seq order, only as
// far as it is fsynced (so that no record reaches the tracking log whose event a crash could take
// back), and hands the events to the plugin in batches of up to 4,096 (and about 1 MiB), at most
// one batch every 100 ms unless they are full, so the plugin writes and fsyncs a few times a second
// rather than per event; over protocol 2 a batch is the journal's lines as they are, which the host
// does not decode (it reads only each line's seq) and the plugin decodes once. The plugin
// acknowledges the highest seq it has written and fsynced to the tracking log, and segments that
// hold only acknowledged events are deleted. The journal, not memory, holds what the plugin has not
// taken: while the plugin is down events pile up on disk, at most 1 MiB of them waits in memory for
// the next flush, and the sender stops sending while 4,096 or more events await an acknowledgement.
//
// A supervisor starts the plugin with hashicorp/go-plugin, after checking its SHA-256 against the
// checksum the installed-files database records for bin/msgtrack (Config.ExpectedSum, which relayd
// wires to the database; go-plugin's SecureConfig checks it once more as it executes the file). A
// binary the database does not list is not run unless the configuration says "unverified" (relayd
// --track-unverified), for development roots that hotfix did not install; a binary whose checksum
// differs is never run. When the plugin
// dies, the supervisor restarts it after a delay (100 ms doubling to 5 s, jittered, by default),
// and the sender replays every event not acknowledged, in order. After too many failures in a
// window (5 in 60 s by default) it takes the configured escalation: run a program, or roll the
// component back with hotfix, or nothing. An escalation still running when the relay stops gets a
// grace period and then SIGTERM, never SIGKILL: hotfix may be in the middle of a transaction. Each failure is logged in the words of the Service
// Control Manager's event 7031 and counted in the component's status together with the reason
// (the panic's first line, and whether the plugin had just asked for a message the relay had
// already delivered and removed: the KB 910618 race).
//
// Restart starts the installed binary, waits for its handshake and version, switches the sender
// over and only then retires the old process; intake and delivery do not notice, since they only
// talk to the journal. Switched off (SetEnabled false, the KB's workaround), tracking keeps
// nothing: events recorded while it is off are dropped, the plugin is stopped, and mail flows as
// before. Events journaled before it was switched off are kept and written once it is on again.
//
// The package is in parts, one job each, around the Host that joins them: the supervisor
// (supervisor.go) owns the plugin processes and the component's state, the sender (sender.go)
// feeds the serving process from the journal (relay/trackjournal), the launcher (launch.go)
// checks a binary (checksum.go) and starts it, and the escalator (escalate.go) runs the
// escalation programs.
package trackhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"relayfix/internal/layout"
	"relayfix/relay/control"
	"relayfix/relay/crashlog"
	"relayfix/relay/track"
	"relayfix/relay/trackjournal"
)

// ComponentName is the tracking component's name on the control socket.
const ComponentName = "tracking"

// DBPath is the row of the installed-files database that vouches for the plugin binary.
const DBPath = "bin/msgtrack"

// flushEvery is the journal's write and fsync window.
const flushEvery = 50 * time.Millisecond

// Errors of starting the plugin.
var (
	// ErrNotInstalled means the installed-files database has no row for bin/msgtrack and the
	// configuration does not allow running an unverified binary.
	ErrNotInstalled = errors.New("not installed: bin/msgtrack has no record in the installed-files database (run relayd with --track-unverified to run it anyway)")
	// ErrChecksum means the binary is not the one the installed-files database records.
	ErrChecksum = errors.New("checksum of bin/msgtrack does not match the installed-files database")
	// ErrDisabled is returned by Restart while tracking is switched off.
	ErrDisabled = errors.New("tracking is disabled")
)

// Options configure a Host.
type Options struct {
	Root   layout.Root
	Config Config
	// Source is the relay's view of its queue, which protocol 1 plugins read properties from. It
	// may be set later with SetSource (the relay is usually built after its recorder).
	Source track.MessageSource
	Logger *slog.Logger
	// PluginStderr, if set, receives a copy of the plugin's stderr.
	PluginStderr io.Writer
	// Successor is set in a relayd that a live upgrade started beside the old one: the plugin
	// starts at once, but the journal is the old process's until it lets go of it (see
	// trackjournal); events recorded meanwhile wait in memory and are journaled after the old
	// process's.
	Successor bool
}

// maxWaiting bounds the events a successor keeps in memory while the old process still has the
// journal: far more than a handover of a few seconds records.
const maxWaiting = 1 << 20

// Host is the tracking component. Create it with New, run it with Run.
type Host struct {
	log     *slog.Logger
	dir     string
	jmu     sync.Mutex
	journal *trackjournal.Journal // nil in a successor until the old process let go of it
	waiting []track.Event         // recorded before the journal was open
	opened  chan struct{}         // closed once journal is set
	launch  *launcher
	sup     *supervisor
	crashes *crashRecorder
	wg      sync.WaitGroup // the flusher, the sender, process watchers and escalations
}

// New opens the journal and returns a host that is not yet running.
func New(opts Options) (*Host, error) {
	if err := opts.Config.Escalation.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(opts.Root.Spool(), "tracking")
	var j *trackjournal.Journal
	if !opts.Successor {
		var err error
		if j, err = trackjournal.Open(dir, log); err != nil {
			return nil, err
		}
	}
	h := &Host{log: log, dir: dir, journal: j, opened: make(chan struct{})}
	if j != nil {
		close(h.opened)
	}
	h.launch = newLauncher(opts, log, &h.wg)
	esc := &escalator{root: opts.Root, cfg: opts.Config.Escalation, log: log, wg: &h.wg}
	h.crashes = newCrashRecorder(crashlog.Open(crashlog.Path(opts.Root)), h.launch.binary, log)
	h.sup = newSupervisor(opts.Config, log, h.launch.start, esc.run)
	h.sup.crashed = h.crashes.record
	h.sup.build = h.launch.build
	if opts.Source != nil {
		h.SetSource(opts.Source)
	}
	return h, nil
}

// SetSource sets the relay's message source for protocol 1 plugins.
func (h *Host) SetSource(src track.MessageSource) { h.launch.setSource(src) }

// Record keeps ev for the plugin. It never waits for the plugin; while tracking is switched off
// it drops the event.
func (h *Host) Record(ev track.Event) { h.RecordSeq(ev) }

// RecordSeq keeps ev as Record does and returns its seq in the journal, 0 if it was dropped: the
// host is a track.Journaled recorder, whose events are durable once Synced reaches their seq.
func (h *Host) RecordSeq(ev track.Event) uint64 {
	if !h.sup.enabled() {
		return 0
	}
	h.jmu.Lock()
	j := h.journal
	if j == nil {
		if len(h.waiting) < maxWaiting {
			h.waiting = append(h.waiting, ev)
		} else {
			h.log.Error("tracking event lost: the handover of the journal takes too long", "queue_id", ev.QueueID, "event", int(ev.ID))
		}
	}
	h.jmu.Unlock()
	if j == nil {
		// A successor's event waits in memory until the old process lets go of the journal
		// (a few seconds at most): the message it ends is settled at once, so only a power
		// cut within that handover can take the event while the spool keeps its outcome.
		return 0
	}
	seq, err := j.Append(ev)
	if err != nil {
		h.log.Error("tracking event lost: journal append failed", "queue_id", ev.QueueID, "event", int(ev.ID), "error", err)
		return 0
	}
	return seq
}

var _ track.Journaled = (*Host)(nil)

// Synced returns the last seq the flusher has made durable, and a channel closed when it moves.
// In a successor that has not taken the journal over yet nothing is durable: it returns 0 and a
// channel closed once the journal is open.
func (h *Host) Synced() (uint64, <-chan struct{}) {
	h.jmu.Lock()
	j, opened := h.journal, h.opened
	h.jmu.Unlock()
	if j == nil {
		return 0, opened
	}
	return j.Synced()
}

// Name returns "tracking".
func (h *Host) Name() string { return ComponentName }

// Status reports the component's state.
func (h *Host) Status() control.ComponentStatus {
	st := h.sup.status()
	st.Name = ComponentName
	st.Binary = h.launch.binary
	h.jmu.Lock()
	if j := h.journal; j != nil {
		st.Pending = int(j.Last() - j.Acked())
		st.Written = j.Acked()
	} else {
		st.Pending = len(h.waiting)
	}
	h.jmu.Unlock()
	st.CrashSignatures = h.crashes.signatures()
	return st
}

// Run supervises the plugin and feeds it until ctx ends, then stops it and closes the journal.
func (h *Host) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		j, err := h.takeJournal(ctx)
		if err != nil {
			h.log.Error("tracking stopped: no journal", "error", err)
			return
		}
		s := &sender{journal: j, current: h.sup.current, log: h.log}
		h.wg.Add(2)
		go func() { defer h.wg.Done(); h.flush(ctx, j) }()
		go func() { defer h.wg.Done(); s.run(ctx) }()
	}()
	h.sup.run(ctx)
	cancel()
	h.wg.Wait()
	h.jmu.Lock()
	defer h.jmu.Unlock()
	if h.journal == nil {
		return nil
	}
	return h.journal.Close()
}

// takeJournal returns the journal, in a successor once the old process let go of it; the events
// recorded meanwhile are appended to it first, in the order they came.
func (h *Host) takeJournal(ctx context.Context) (*trackjournal.Journal, error) {
	h.jmu.Lock()
	j := h.journal
	h.jmu.Unlock()
	if j != nil {
		return j, nil
	}
	j, err := trackjournal.OpenWait(ctx, h.dir, h.log)
	if err != nil {
		return nil, err
	}
	h.jmu.Lock()
	defer h.jmu.Unlock()
	for _, ev := range h.waiting {
		if _, err := j.Append(ev); err != nil {
			h.log.Error("tracking event lost: journal append failed", "queue_id", ev.QueueID, "event", int(ev.ID), "error", err)
		}
	}
	h.waiting = nil
	h.journal = j
	close(h.opened)
	return j, nil
}

// flush fsyncs the journal every flushEvery while events arrive.
func (h *Host) flush(ctx context.Context, j *trackjournal.Journal) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.Sync(); err != nil {
				h.log.Error("sync tracking journal", "error", err)
			}
		}
	}
}

// Restart starts the installed build, switches over to it and retires the running process.
func (h *Host) Restart(ctx context.Context) (control.ComponentStatus, error) {
	if !h.sup.enabled() {
		return h.Status(), ErrDisabled
	}
	p, err := h.launch.start(ctx)
	if err != nil {
		return h.Status(), fmt.Errorf("restart tracking: %w", err)
	}
	adopted, err := h.sup.request(ctx, ctlReq{op: opAdopt, p: p})
	if err != nil {
		return h.Status(), fmt.Errorf("restart tracking: %w", err)
	}
	if !adopted {
		return h.Status(), fmt.Errorf("restart tracking: %w", ErrDisabled)
	}
	return h.Status(), nil
}

// SetEnabled switches tracking on or off.
func (h *Host) SetEnabled(ctx context.Context, on bool) (control.ComponentStatus, error) {
	op := opDisable
	if on {
		op = opEnable
	}
	if _, err := h.sup.request(ctx, ctlReq{op: op}); err != nil {
		return h.Status(), fmt.Errorf("tracking: %w", err)
	}
	return h.Status(), nil
}
