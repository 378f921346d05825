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
// installed-files database (ROOT/hotfix/installed.json, row bin/msgtrack; go-plugin's SecureConfig
// checks it once more as it executes the file). A binary the database does not list is not run
// unless the configuration says "unverified" (relayd --track-unverified), for development roots
// that hotfix did not install; a binary whose checksum differs is never run. When the plugin
// dies, the supervisor restarts it after a delay (100 ms doubling to 5 s, jittered, by default),
// and the sender replays every event not acknowledged, in order. After too many failures in a
// window (5 in 60 s by default) it takes the configured escalation: run a program, or roll the
// component back with hotfix, or nothing. Each failure is logged in the words of the Service
// Control Manager's event 7031 and counted in the component's status together with the reason
// (the panic's first line, and whether the plugin had just asked for a message the relay had
// already delivered and removed: the KB 910618 race).
//
// Restart starts the installed binary, waits for its handshake and version, switches the sender
// over and only then retires the old process; intake and delivery do not notice, since they only
// talk to the journal. Switched off (SetEnabled false, the KB's workaround), tracking keeps
// nothing: events recorded while it is off are dropped, the plugin is stopped, and mail flows as
// before. Events journaled before it was switched off are kept and written once it is on again.
package trackhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"relayfix/internal/layout"
	"relayfix/packages"
	"relayfix/relay/control"
	"relayfix/relay/track"
	"relayfix/relay/trackrpc"
)

// ComponentName is the tracking component's name on the control socket.
const ComponentName = "tracking"

// DBPath is the row of the installed-files database that vouches for the plugin binary.
const DBPath = "bin/msgtrack"

const (
	flushEvery = 50 * time.Millisecond // journal write and fsync window
	// maxInFlight bounds the unacknowledged events: what a build that acknowledges late may have
	// to be sent again after a crash.
	maxInFlight = 4096
	// sendEvery spaces out batches that are not full: each batch costs the plugin a write and an
	// fsync of its log, and the relay and the plugin a round trip. The tracking log trails the
	// journal by that much more; nothing waits on it.
	sendEvery = 100 * time.Millisecond
)

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
}

// Host is the tracking component. Create it with New, run it with Run.
type Host struct {
	root    layout.Root
	cfg     Config
	binary  string
	log     *slog.Logger
	journal *Journal
	stderr  io.Writer

	on  atomic.Bool // events are kept (tracking enabled)
	src atomic.Pointer[sourceBox]

	ctl chan ctlReq

	mu         sync.Mutex
	cur        *proc
	gen        uint64
	curChanged chan struct{}
	health     string
	detail     string
	crashes    int
	lastExit   string
	lastSeen   control.ComponentStatus // the last serving process, for status while none serves

	sums sumCache
	wg   sync.WaitGroup
	rnd  *rand.Rand
}

type sourceBox struct{ src track.MessageSource }

// New opens the journal and returns a host that is not yet running.
func New(opts Options) (*Host, error) {
	if err := opts.Config.Escalation.Validate(); err != nil {
		return nil, err
	}
	j, err := OpenJournal(filepath.Join(opts.Root.Spool(), "tracking"))
	if err != nil {
		return nil, err
	}
	h := &Host{
		root:       opts.Root,
		cfg:        opts.Config,
		binary:     opts.Config.Binary,
		log:        opts.Logger,
		journal:    j,
		stderr:     opts.PluginStderr,
		ctl:        make(chan ctlReq),
		curChanged: make(chan struct{}),
		health:     control.HealthStarting,
		rnd:        rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
	}
	if h.binary == "" {
		h.binary = opts.Root.Bin("msgtrack")
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.stderr == nil {
		h.stderr = io.Discard
	}
	h.on.Store(opts.Config.Enabled)
	if !opts.Config.Enabled {
		h.health = control.HealthDisabled
	}
	if opts.Source != nil {
		h.SetSource(opts.Source)
	}
	return h, nil
}

// SetSource sets the relay's message source for protocol 1 plugins.
func (h *Host) SetSource(src track.MessageSource) { h.src.Store(&sourceBox{src}) }

// Record keeps ev for the plugin. It never waits for the plugin; while tracking is switched off
// it drops the event.
func (h *Host) Record(ev track.Event) {
	if !h.on.Load() {
		return
	}
	if _, err := h.journal.Append(ev); err != nil {
		h.log.Error("tracking event lost: journal append failed", "queue_id", ev.QueueID, "event", int(ev.ID), "error", err)
	}
}

// Name returns "tracking".
func (h *Host) Name() string { return ComponentName }

// Status reports the component's state.
func (h *Host) Status() control.ComponentStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *Host) statusLocked() control.ComponentStatus {
	st := control.ComponentStatus{
		Name:     ComponentName,
		Binary:   h.binary,
		Enabled:  h.on.Load(),
		Health:   h.health,
		Detail:   h.detail,
		Crashes:  h.crashes,
		LastExit: h.lastExit,
		Pending:  int(h.journal.Last() - h.journal.Acked()),
		Written:  h.journal.Acked(),
	}
	if p := h.cur; p != nil {
		st.Version, st.Protocol, st.PID, st.Started = p.version, p.protocol, p.pid, p.started
	} else {
		st.Version, st.Protocol = h.lastSeen.Version, h.lastSeen.Protocol
	}
	return st
}

// Run supervises the plugin and feeds it until ctx ends, then stops it and closes the journal.
func (h *Host) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.flush(ctx) }()
	go func() { defer h.wg.Done(); h.send(ctx) }()
	h.supervise(ctx)
	cancel()
	h.wg.Wait()
	return h.journal.Close()
}

// flush fsyncs the journal every flushEvery while events arrive.
func (h *Host) flush(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := h.journal.Sync(); err != nil {
				h.log.Error("sync tracking journal", "error", err)
			}
		}
	}
}

// Restart starts the installed build, switches over to it and retires the running process.
func (h *Host) Restart(ctx context.Context) (control.ComponentStatus, error) {
	if !h.on.Load() {
		return h.Status(), ErrDisabled
	}
	p, err := h.start(ctx)
	if err != nil {
		return h.Status(), fmt.Errorf("restart tracking: %w", err)
	}
	req := ctlReq{op: opAdopt, p: p, reply: make(chan control.ComponentStatus, 1)}
	select {
	case h.ctl <- req:
	case <-ctx.Done():
		p.kill() // never handed over
		return h.Status(), fmt.Errorf("restart tracking: %w", ctx.Err())
	}
	select {
	case st := <-req.reply:
		if st.PID != p.pid {
			return st, fmt.Errorf("restart tracking: %w", ErrDisabled)
		}
		return st, nil
	case <-ctx.Done():
		return h.Status(), fmt.Errorf("restart tracking: %w", ctx.Err())
	}
}

// SetEnabled switches tracking on or off.
func (h *Host) SetEnabled(ctx context.Context, on bool) (control.ComponentStatus, error) {
	op := opDisable
	if on {
		op = opEnable
	}
	return h.request(ctx, ctlReq{op: op})
}

type ctlOp int

const (
	opAdopt ctlOp = iota
	opEnable
	opDisable
)

type ctlReq struct {
	op    ctlOp
	p     *proc
	reply chan control.ComponentStatus
}

func (h *Host) request(ctx context.Context, req ctlReq) (control.ComponentStatus, error) {
	req.reply = make(chan control.ComponentStatus, 1)
	select {
	case h.ctl <- req:
	case <-ctx.Done():
		return h.Status(), fmt.Errorf("tracking: %w", ctx.Err())
	}
	select {
	case st := <-req.reply:
		return st, nil
	case <-ctx.Done():
		return h.Status(), fmt.Errorf("tracking: %w", ctx.Err())
	}
}

// supervise owns the plugin processes: it starts them, notices their death, restarts them after
// the policy's delay, escalates, and serves control requests.
func (h *Host) supervise(ctx context.Context) {
	var (
		cur     *proc
		window  failureWindow
		retryAt time.Time // when to (re)start; zero: now
	)
	defer func() {
		if cur != nil {
			h.retire(cur)
		}
	}()
	for {
		if h.on.Load() && cur == nil && !time.Now().Before(retryAt) {
			p, err := h.start(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				h.startFailed(err)
				retryAt = time.Now().Add(time.Duration(max(h.cfg.Restart.MaxMS, 1000)) * time.Millisecond)
			} else {
				cur = p
				h.install(p)
			}
		}
		var dead <-chan struct{}
		if cur != nil {
			dead = cur.dead
		}
		var timer <-chan time.Time
		var t *time.Timer
		if h.on.Load() && cur == nil {
			t = time.NewTimer(time.Until(retryAt))
			timer = t.C
		}
		h.step(ctx, &cur, &window, &retryAt, dead, timer)
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// step waits for one thing to happen to the supervisor and handles it.
func (h *Host) step(ctx context.Context, cur **proc, window *failureWindow, retryAt *time.Time, dead <-chan struct{}, timer <-chan time.Time) {
	select {
	case <-ctx.Done():
	case <-timer:
	case <-dead:
		h.retire(*cur)
		reason := (*cur).exitReason()
		*cur = nil
		d := window.fail(time.Now(), h.cfg.Restart, h.cfg.Escalation, h.rnd.Float64())
		h.mu.Lock()
		h.crashes++
		h.lastExit = reason
		h.health, h.detail = control.HealthRestarting, "terminated unexpectedly: "+reason
		h.mu.Unlock()
		h.log.Error(EventMessage(ComponentName, d, h.cfg.Escalation), "reason", reason)
		if d.Escalate {
			h.escalate(ctx, d, reason)
		}
		*retryAt = time.Now().Add(d.Delay)
	case req := <-h.ctl:
		switch req.op {
		case opAdopt:
			if !h.on.Load() { // switched off while the new process was starting
				req.p.kill()
				break
			}
			old := *cur
			*cur = req.p
			h.install(req.p)
			if old != nil {
				h.retire(old)
			}
			window.reset()
		case opDisable:
			h.on.Store(false)
			if *cur != nil {
				h.retire(*cur)
				*cur = nil
			}
			h.setHealth(control.HealthDisabled, "")
		case opEnable:
			if !h.on.Load() {
				h.on.Store(true)
				h.setHealth(control.HealthStarting, "")
				*retryAt = time.Time{}
				window.reset()
			}
			if *cur == nil {
				if p, err := h.start(ctx); err != nil {
					h.startFailed(err)
					*retryAt = time.Now().Add(time.Duration(max(h.cfg.Restart.MaxMS, 1000)) * time.Millisecond)
				} else {
					*cur = p
					h.install(p)
				}
			}
		}
		req.reply <- h.Status()
	}
}

// startFailed reports a failed start in the status, and in the log unless it is the same failure
// as last time (a root without an installed plugin would otherwise log every retry).
func (h *Host) startFailed(err error) {
	h.mu.Lock()
	again := h.health == control.HealthFailed && h.detail == err.Error()
	h.health, h.detail = control.HealthFailed, err.Error()
	h.mu.Unlock()
	if again {
		h.log.Debug("tracking component still cannot start", "error", err)
		return
	}
	h.log.Error("tracking component cannot start", "error", err)
}

func (h *Host) setHealth(health, detail string) {
	h.mu.Lock()
	h.health, h.detail = health, detail
	h.mu.Unlock()
}

// install makes p the process the sender feeds.
func (h *Host) install(p *proc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = p
	h.gen++
	p.gen = h.gen
	h.health, h.detail = control.HealthHealthy, p.note
	h.lastSeen = control.ComponentStatus{Version: p.version, Protocol: p.protocol}
	close(h.curChanged)
	h.curChanged = make(chan struct{})
	h.log.Info("tracking component serving", "version", p.version, "protocol", p.protocol, "pid", p.pid)
}

// retire stops feeding p (waiting for a call in flight) and ends its process.
func (h *Host) retire(p *proc) {
	h.mu.Lock()
	if h.cur == p {
		h.cur = nil
		h.gen++
		close(h.curChanged)
		h.curChanged = make(chan struct{})
	}
	h.mu.Unlock()
	p.callMu.Lock()
	p.retired = true
	p.callMu.Unlock()
	p.kill()
}

// current waits for a serving process.
func (h *Host) current(ctx context.Context) (*proc, error) {
	for {
		h.mu.Lock()
		p, ch := h.cur, h.curChanged
		h.mu.Unlock()
		if p != nil {
			return p, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// send feeds the serving process from the journal, in order, and trims what it acknowledges.
// Whenever the process changes, it starts again after the last acknowledged event.
func (h *Host) send(ctx context.Context) {
	var (
		r    *Reader
		gen  uint64
		sent uint64
	)
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	for ctx.Err() == nil {
		p, err := h.current(ctx)
		if err != nil {
			return
		}
		if r == nil || p.gen != gen {
			if r != nil {
				r.Close()
			}
			gen = p.gen
			sent = h.journal.Acked()
			r = h.journal.NewReader(sent + 1)
		}
		acked := h.journal.Acked()
		if sent > acked && (sent-acked >= maxInFlight) {
			h.call(p, func(t *trackrpc.RPCClient) (trackrpc.Ack, error) { return t.Sync() }, &gen)
			continue
		}
		batch, err := r.NextLines(ctx, trackrpc.MaxBatch, trackrpc.MaxBatchBytes, 25*time.Millisecond)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("read tracking journal", "error", err)
				sleep(ctx, time.Second)
				gen = 0
			}
			continue
		}
		if batch.N == 0 {
			if sent > h.journal.Acked() {
				h.call(p, func(t *trackrpc.RPCClient) (trackrpc.Ack, error) { return t.Sync() }, &gen)
			}
			continue
		}
		lines := trackrpc.Lines{Data: batch.Data}
		if h.call(p, func(t *trackrpc.RPCClient) (trackrpc.Ack, error) { return t.TrackLines(lines) }, &gen) {
			sent = batch.Last
			if batch.N < trackrpc.MaxBatch && len(batch.Data) < trackrpc.MaxBatchBytes {
				sleep(ctx, sendEvery)
			}
		}
	}
}

// call makes one call to p unless p was retired meanwhile, and takes the Ack. On failure it
// clears *gen so that the sender starts again from the last acknowledged event.
func (h *Host) call(p *proc, fn func(*trackrpc.RPCClient) (trackrpc.Ack, error), gen *uint64) bool {
	p.callMu.Lock()
	if p.retired {
		p.callMu.Unlock()
		*gen = 0
		return false
	}
	ack, err := fn(p.t)
	p.callMu.Unlock()
	if err != nil {
		*gen = 0
		if isConnErr(err) || p.client.Exited() {
			p.markDead(err)
			return false
		}
		h.log.Warn("tracking plugin refused a batch; will retry", "error", err)
		time.Sleep(200 * time.Millisecond)
		return false
	}
	if err := h.journal.Trim(ack.Synced); err != nil {
		h.log.Error("trim tracking journal", "error", err)
	}
	return true
}

// isConnErr reports whether a call failed because the connection to the plugin is gone (the
// process died: net/rpc reports the call in flight as unexpected EOF, later ones as shut down),
// rather than because the plugin answered with an error.
func isConnErr(err error) bool {
	var se rpc.ServerError
	if errors.As(err, &se) {
		return false
	}
	return errors.Is(err, rpc.ErrShutdown) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// escalate takes the configured action in the background; its outcome is logged.
func (h *Host) escalate(ctx context.Context, d Decision, reason string) {
	e := h.cfg.Escalation
	var cmd *exec.Cmd
	switch e.Action {
	case ActionRun:
		cmd = exec.CommandContext(ctx, e.Program, e.Args...)
	case ActionRollback:
		hotfix := e.Hotfix
		if hotfix == "" {
			hotfix = h.root.Bin("hotfix")
		}
		cmd = exec.CommandContext(ctx, hotfix, "rollback", "msgtrack", "--root", string(h.root))
	default:
		return
	}
	cmd.Env = append(os.Environ(),
		"RELAYFIX_ROOT="+string(h.root),
		"RELAYFIX_COMPONENT="+ComponentName,
		"RELAYFIX_FAILURES="+strconv.Itoa(d.Count),
		"RELAYFIX_WINDOW_MS="+strconv.Itoa(e.WindowMS),
		"RELAYFIX_LAST_EXIT="+reason,
	)
	h.log.Warn("tracking component failed too often; escalating", "action", e.Action, "failures", d.Count, "command", cmd.String())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		out, err := cmd.CombinedOutput()
		if err != nil {
			h.log.Error("tracking escalation failed", "action", e.Action, "error", err, "output", strings.TrimSpace(string(out)))
			return
		}
		h.log.Info("tracking escalation done", "action", e.Action, "output", strings.TrimSpace(string(out)))
	}()
}

// sumCache remembers the checksum of the plugin binary for as long as the file is the same file
// (device, inode, size, modification and change times): a crash-looping plugin is restarted
// often, and hashing an 18 MB binary each time cost the relay more than the restarts themselves.
// go-plugin's SecureConfig still hashes the file at each start, right before it runs it.
type sumCache struct {
	mu  sync.Mutex
	key fileKey
	sum string
}

type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// checksum returns the hex SHA-256 of the file at path.
func (c *sumCache) checksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	key, ok := identify(f)
	c.mu.Lock()
	if ok && key == c.key && c.sum != "" {
		sum := c.sum
		c.mu.Unlock()
		return sum, nil
	}
	c.mu.Unlock()
	hs := sha256.New()
	if _, err := io.Copy(hs, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(hs.Sum(nil))
	if ok {
		c.mu.Lock()
		c.key, c.sum = key, sum
		c.mu.Unlock()
	}
	return sum, nil
}

// verify checks the binary against the installed-files database and returns the checksum
// go-plugin should check again (nil when running unverified) and a note for the status.
func (h *Host) verify() (want []byte, note string, err error) {
	have, err := h.sums.checksum(h.binary)
	if err != nil {
		return nil, "", fmt.Errorf("plugin binary: %w", err)
	}
	db, err := packages.LoadDB(h.root)
	if err != nil {
		return nil, "", err
	}
	row, ok := db.Lookup(DBPath)
	if !ok {
		if !h.cfg.Unverified {
			return nil, "", ErrNotInstalled
		}
		return nil, "unverified: bin/msgtrack has no record in the installed-files database", nil
	}
	if !strings.EqualFold(row.SHA256, have) {
		return nil, "", fmt.Errorf("%w (want %s, have %s)", ErrChecksum, row.SHA256, have)
	}
	want, err = hex.DecodeString(have)
	return want, "", err
}

// start runs the installed binary and waits for its handshake and version.
func (h *Host) start(ctx context.Context) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want, note, err := h.verify()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.binary)
	cmd.Env = append(hostEnv(), layout.EnvRoot+"="+string(h.root))
	setPdeathsig(cmd)
	p := &proc{dead: make(chan struct{}), note: note, stderr: &stderrTail{copy: h.stderr}}
	p.src = &sourceWatch{h: h}
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  trackrpc.Handshake,
		VersionedPlugins: trackrpc.Sets(p.src, nil, 1, 2),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "msgtrack", Level: hclog.Info, JSONFormat: true,
			Output: slogWriter{h.log}}),
		Stderr:       p.stderr,
		SkipHostEnv:  true,
		StartTimeout: 10 * time.Second,
	}
	if want != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	p.client = plugin.NewClient(cfg)
	rc, err := p.client.Client()
	if err != nil {
		p.client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("%w (changed while starting)", ErrChecksum)
		}
		return nil, fmt.Errorf("start %s: %w", h.binary, err)
	}
	raw, err := rc.Dispense(trackrpc.PluginName)
	if err != nil {
		p.client.Kill()
		return nil, fmt.Errorf("start %s: %w", h.binary, err)
	}
	t, ok := raw.(*trackrpc.RPCClient)
	if !ok {
		p.client.Kill()
		return nil, fmt.Errorf("start %s: unexpected plugin type %T", h.binary, raw)
	}
	p.t, p.protocol = t, t.Protocol()
	if p.version, err = t.Version(); err != nil {
		p.client.Kill()
		return nil, fmt.Errorf("start %s: version: %w", h.binary, err)
	}
	if err := t.Health(); err != nil {
		p.client.Kill()
		return nil, fmt.Errorf("start %s: health: %w", h.binary, err)
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now().UTC()
	h.wg.Add(1)
	go func() { defer h.wg.Done(); p.watch() }()
	return p, nil
}

// hostEnv is relayd's environment without RELAYFIX_ROOT, which start sets for the plugin.
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, layout.EnvRoot+"=") {
			env = append(env, kv)
		}
	}
	return env
}
