package trackhost

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"relayfix/relay/control"
)

// crashLoop is the number of failures within the window from which a component is reported as
// crash-looping rather than healthy or restarting: one crash may be bad luck, two are a pattern.
const crashLoop = 2

// supervisor owns the plugin processes and the component's state: it starts a process, notices
// its death, restarts it after the policy's delay, escalates, and serves control requests. Only
// run's goroutine changes the serving process; others read it, and the status, under mu.
type supervisor struct {
	start    func(context.Context) (*proc, error)
	escalate func(context.Context, Decision, string)
	crashed  func(*proc)   // records a dead process's crash signature; may be nil
	build    func() string // identifies the installed build (its checksum); may be nil
	restart  RestartPolicy
	esc      Escalation
	log      *slog.Logger
	rnd      *rand.Rand
	ctl      chan ctlReq
	on       atomic.Bool // events are kept (tracking enabled)

	// run's own.
	window  failureWindow
	retryAt time.Time // when to (re)start; zero: now

	mu       sync.Mutex
	cur      *proc         // the serving process
	gen      uint64        // bumped whenever cur changes
	changed  chan struct{} // closed and replaced whenever cur changes
	health   string
	detail   string
	crashes  int
	lastExit string
	lastSeen control.ComponentStatus // the last serving process, for status while none serves
	recent   []time.Time             // the failure window's times, for status
}

func newSupervisor(cfg Config, log *slog.Logger, start func(context.Context) (*proc, error), escalate func(context.Context, Decision, string)) *supervisor {
	s := &supervisor{
		start:    start,
		escalate: escalate,
		restart:  cfg.Restart,
		esc:      cfg.Escalation,
		log:      log,
		rnd:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
		ctl:      make(chan ctlReq),
		changed:  make(chan struct{}),
		health:   control.HealthStarting,
	}
	s.on.Store(cfg.Enabled)
	if !cfg.Enabled {
		s.health = control.HealthDisabled
	}
	return s
}

func (s *supervisor) enabled() bool { return s.on.Load() }

// status returns the supervisor's part of the component's status.
func (s *supervisor) status() control.ComponentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := control.ComponentStatus{
		Enabled:  s.on.Load(),
		Health:   s.health,
		Detail:   s.detail,
		Crashes:  s.crashes,
		LastExit: s.lastExit,
	}
	w := failureWindow{times: s.recent}
	if n := w.count(time.Now(), s.esc); n >= crashLoop && (st.Health == control.HealthHealthy || st.Health == control.HealthRestarting) {
		st.Health = control.HealthCrashLooping
		window := time.Duration(s.esc.WindowMS) * time.Millisecond
		if window <= 0 {
			window = time.Minute
		}
		loop := fmt.Sprintf("%d crashes in the last %s", n, window)
		if st.Detail == "" {
			st.Detail = loop
		} else {
			st.Detail = loop + "; " + st.Detail
		}
	}
	if p := s.cur; p != nil {
		st.Version, st.Protocol, st.PID, st.Started = p.version, p.protocol, p.pid, p.started
	} else {
		st.Version, st.Protocol = s.lastSeen.Version, s.lastSeen.Protocol
	}
	return st
}

type ctlOp int

const (
	opAdopt ctlOp = iota
	opEnable
	opDisable
)

type ctlReq struct {
	op    ctlOp
	p     *proc     // for opAdopt
	reply chan bool // for opAdopt: whether p now serves
}

// request hands req to run and waits for it to be done. A process to adopt that never reached
// run is killed.
func (s *supervisor) request(ctx context.Context, req ctlReq) (bool, error) {
	req.reply = make(chan bool, 1)
	select {
	case s.ctl <- req:
	case <-ctx.Done():
		if req.p != nil {
			req.p.kill()
		}
		return false, ctx.Err()
	}
	select {
	case ok := <-req.reply:
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// run supervises until ctx ends, then retires the serving process.
func (s *supervisor) run(ctx context.Context) {
	defer func() {
		if s.cur != nil {
			s.retire(s.cur)
		}
	}()
	for ctx.Err() == nil {
		if s.on.Load() && s.cur == nil && !time.Now().Before(s.retryAt) {
			s.tryStart(ctx)
		}
		var dead <-chan struct{}
		if s.cur != nil {
			dead = s.cur.dead
		}
		var timer <-chan time.Time
		var t *time.Timer
		if s.on.Load() && s.cur == nil {
			t = time.NewTimer(time.Until(s.retryAt))
			timer = t.C
		}
		s.step(ctx, dead, timer)
		if t != nil {
			t.Stop()
		}
	}
}

// step waits for one thing to happen and handles it.
func (s *supervisor) step(ctx context.Context, dead <-chan struct{}, timer <-chan time.Time) {
	select {
	case <-ctx.Done():
	case <-timer:
	case <-dead:
		s.died(ctx)
	case req := <-s.ctl:
		adopted := s.handle(ctx, req)
		req.reply <- adopted
	}
}

// tryStart starts a process to serve; after a failure it tries again once the policy's longest
// delay has passed.
func (s *supervisor) tryStart(ctx context.Context) {
	p, err := s.start(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.startFailed(err)
			s.retryAt = time.Now().Add(s.restart.Max())
		}
		return
	}
	s.install(p)
}

// died handles the death of the serving process.
func (s *supervisor) died(ctx context.Context) {
	p := s.cur
	s.retire(p)
	reason := p.exitReason()
	if s.crashed != nil {
		s.crashed(p)
	}
	build := ""
	if s.build != nil {
		build = s.build()
	}
	now := time.Now()
	d := s.window.fail(now, s.restart, s.esc, s.rnd.Float64(), build)
	s.mu.Lock()
	s.recent = append(s.recent[:0], s.window.times...)
	s.crashes++
	s.lastExit = reason
	s.health, s.detail = control.HealthRestarting, "terminated unexpectedly: "+reason
	s.mu.Unlock()
	s.log.Error(EventMessage(ComponentName, d, s.esc), "reason", reason)
	if d.Escalate {
		s.escalate(ctx, d, reason)
	}
	s.retryAt = time.Now().Add(d.Delay)
}

// handle serves one control request; for opAdopt it reports whether the process now serves.
func (s *supervisor) handle(ctx context.Context, req ctlReq) bool {
	switch req.op {
	case opAdopt:
		if !s.on.Load() { // switched off while the new process was starting
			req.p.kill()
			return false
		}
		old := s.cur
		s.install(req.p)
		if old != nil {
			s.retire(old)
		}
		s.resetWindow()
		return true
	case opDisable:
		s.on.Store(false)
		if s.cur != nil {
			s.retire(s.cur)
		}
		s.setHealth(control.HealthDisabled, "")
	case opEnable:
		if !s.on.Load() {
			s.on.Store(true)
			s.setHealth(control.HealthStarting, "")
			s.retryAt = time.Time{}
			s.resetWindow()
		}
		if s.cur == nil {
			s.tryStart(ctx)
		}
	}
	return false
}

// startFailed reports a failed start in the status, and in the log unless it is the same failure
// as last time (a root without an installed plugin would otherwise log every retry).
func (s *supervisor) startFailed(err error) {
	s.mu.Lock()
	again := s.health == control.HealthFailed && s.detail == err.Error()
	s.health, s.detail = control.HealthFailed, err.Error()
	s.mu.Unlock()
	if again {
		s.log.Debug("tracking component still cannot start", "error", err)
		return
	}
	s.log.Error("tracking component cannot start", "error", err)
}

// resetWindow forgets past failures: the operator restarted or switched on the component.
func (s *supervisor) resetWindow() {
	s.window.reset()
	s.mu.Lock()
	s.recent = s.recent[:0]
	s.mu.Unlock()
}

func (s *supervisor) setHealth(health, detail string) {
	s.mu.Lock()
	s.health, s.detail = health, detail
	s.mu.Unlock()
}

// install makes p the serving process, the one the sender feeds.
func (s *supervisor) install(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = p
	s.gen++
	p.gen = s.gen
	s.health, s.detail = control.HealthHealthy, p.note
	s.lastSeen = control.ComponentStatus{Version: p.version, Protocol: p.protocol}
	close(s.changed)
	s.changed = make(chan struct{})
	s.log.Info("tracking component serving", "version", p.version, "protocol", p.protocol, "pid", p.pid)
}

// retire stops feeding p (waiting for a call in flight) and ends its process.
func (s *supervisor) retire(p *proc) {
	s.mu.Lock()
	if s.cur == p {
		s.cur = nil
		s.gen++
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	p.retire()
}

// current waits for a serving process.
func (s *supervisor) current(ctx context.Context) (*proc, error) {
	for {
		s.mu.Lock()
		p, ch := s.cur, s.changed
		s.mu.Unlock()
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
