package trackhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"relayfix/relay/crashlog"
	"relayfix/relay/track"
	"relayfix/relay/trackrpc"
)

// proc is one running plugin process.
type proc struct {
	client   *plugin.Client
	t        *trackrpc.RPCClient
	version  string
	protocol int
	pid      int
	started  time.Time
	gen      uint64
	note     string // status detail while healthy (e.g. running unverified)
	stderr   *stderrTail
	src      *sourceWatch

	callMu  sync.Mutex // held around each call; retire takes it to wait for the call in flight
	retired bool

	dead     chan struct{}
	deadOnce sync.Once
	deadErr  error
	killOnce sync.Once
}

// markDead records that the process is gone (or its connection is).
func (p *proc) markDead(err error) {
	p.deadOnce.Do(func() {
		p.deadErr = err
		close(p.dead)
	})
}

// watch notices the process's exit even when no call is in flight.
func (p *proc) watch() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.dead:
			return
		case <-t.C:
			if p.client.Exited() {
				p.markDead(errors.New("process exited"))
				return
			}
		}
	}
}

// retire stops calls to p, waiting for the call in flight, and ends the process.
func (p *proc) retire() {
	p.callMu.Lock()
	p.retired = true
	p.callMu.Unlock()
	p.kill()
}

// kill ends the process (gracefully if it still answers) and collects its stderr.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.client.Kill()
		p.markDead(errors.New("retired"))
	})
}

// exitReason describes how the process ended, from its stderr and from what it asked the relay
// just before. Call it after kill, when stderr has been read to its end.
func (p *proc) exitReason() string {
	var b strings.Builder
	panicLine, frame := p.stderr.panic()
	switch {
	case panicLine != "":
		b.WriteString(panicLine)
		if frame != "" {
			fmt.Fprintf(&b, " (in %s)", frame)
		}
	case p.deadErr != nil:
		b.WriteString(p.deadErr.Error())
	default:
		b.WriteString("process exited")
	}
	if n, q := p.src.missed(); n > 0 {
		fmt.Fprintf(&b, "; it had just read back message %s, which the relay had already delivered and removed (%d such read(s): the KB 910618 race)", q, n)
	}
	if p.version != "" {
		fmt.Fprintf(&b, "; build %s", p.version)
	}
	return b.String()
}

// stderrTail receives the plugin's stderr line by line (go-plugin writes each line, then a
// newline) and keeps the first panic line and the first frame of its stack.
type stderrTail struct {
	copy  io.Writer
	crash crashlog.Tail // the whole panic, for the crash's signature

	mu      sync.Mutex
	inPanic bool
	line    string
	frame   string
}

func (s *stderrTail) Write(b []byte) (int, error) {
	s.copy.Write(b)
	s.crash.Write(b)
	line := strings.TrimSpace(string(b))
	if line == "" {
		return len(b), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.line == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")):
		s.line, s.inPanic = line, true
	case s.inPanic && s.frame == "" && strings.HasSuffix(line, ")") && strings.Contains(line, "(") &&
		!strings.HasPrefix(line, "goroutine ") && !strings.HasPrefix(line, "panic(") && !strings.HasPrefix(line, "runtime."):
		s.frame = line[:strings.LastIndex(line, "(")]
	}
	return len(b), nil
}

func (s *stderrTail) panic() (line, frame string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.line, s.frame
}

// sourceWatch is the message source one plugin process sees: the relay's, with a note of the
// reads that found the message already gone.
type sourceWatch struct {
	src    *atomic.Pointer[sourceBox]
	misses atomic.Int64
	mu     sync.Mutex
	last   string
}

func (s *sourceWatch) Properties(ctx context.Context, queueID string) (track.Properties, error) {
	box := s.src.Load()
	if box == nil || box.src == nil {
		return track.Properties{}, fmt.Errorf("the relay's message source is not connected")
	}
	p, err := box.src.Properties(ctx, queueID)
	if errors.Is(err, track.ErrNoMessage) {
		s.misses.Add(1)
		s.mu.Lock()
		s.last = queueID
		s.mu.Unlock()
	}
	return p, err
}

func (s *sourceWatch) missed() (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.misses.Load(), s.last
}
