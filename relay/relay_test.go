package relay_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relayfix/internal/layout"
	"relayfix/internal/smtpload"
	"relayfix/relay"
	"relayfix/relay/control"
	"relayfix/relay/track"
)

type events struct {
	mu  sync.Mutex
	evs []track.Event
}

func (e *events) Record(ev track.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) of(id string) []track.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []track.Event
	for _, ev := range e.evs {
		if ev.QueueID == id {
			out = append(out, ev)
		}
	}
	return out
}

type fakeComponent struct{ restarts int }

func (c *fakeComponent) Name() string { return "tracking" }
func (c *fakeComponent) Status() control.ComponentStatus {
	return control.ComponentStatus{Name: "tracking", Version: "6.5.7651.45", Enabled: true, Health: control.HealthHealthy, Crashes: c.restarts}
}
func (c *fakeComponent) Restart(context.Context) (control.ComponentStatus, error) {
	c.restarts++
	return c.Status(), nil
}
func (c *fakeComponent) SetEnabled(context.Context, bool) (control.ComponentStatus, error) {
	return c.Status(), nil
}

// startRelay runs a relay in this process and returns it once it listens.
func startRelay(t *testing.T, cfg relay.Config) *relay.Relay {
	t.Helper()
	if cfg.Root == "" {
		dir, err := os.MkdirTemp("", "rt")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cfg.Root = layout.Root(dir)
	}
	cfg.Listen = "127.0.0.1:0"
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	for deadline := time.Now().Add(10 * time.Second); r.Addr() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("relay did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

func queueID(reply string) string {
	_, id, _ := strings.Cut(reply, "queued as ")
	return strings.TrimSpace(id)
}

func TestTrackingEventsAndMessageSource(t *testing.T) {
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	rec := &events{}
	r := startRelay(t, relay.Config{NextHop: sink.Addr(), Recorder: rec, Hostname: "relay.test"})
	res, err := smtpload.Load(context.Background(), smtpload.LoadOptions{Addr: r.Addr().String(), N: 5, From: "from@example.test", To: "to@example.test"})
	if err != nil || res.Acked != 5 {
		t.Fatalf("load: %v acked %d", err, res.Acked)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tally := sink.WaitFor(ctx, res.Acks); tally.Lost != 0 {
		t.Fatalf("%v", tally)
	}
	for seq, reply := range res.Acks {
		id := queueID(reply)
		// Delivered messages are gone from the queue: a tracker reading them back must be told.
		var evs []track.Event
		for deadline := time.Now().Add(5 * time.Second); ; {
			evs = rec.of(id)
			if len(evs) >= 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := r.Messages().Properties(ctx, id); !errors.Is(err, track.ErrNoMessage) {
			t.Fatalf("Properties of delivered %s: %v, want ErrNoMessage", id, err)
		}
		var ids []track.EventID
		for _, ev := range evs {
			ids = append(ids, ev.ID)
			if ev.Time.IsZero() || ev.Time.Location() != time.UTC {
				t.Errorf("event %d of %s: time %v not UTC", ev.ID, id, ev.Time)
			}
			p := ev.Props
			if p == nil || p.QueueID != id || p.Sender != "from@example.test" || len(p.Recipients) != 1 ||
				p.Recipients[0] != "to@example.test" || p.Size < 4096 || p.ClientIP != "127.0.0.1" ||
				p.Helo == "" || p.Server != "relay.test" || !strings.Contains(p.Subject, "load message") ||
				!strings.Contains(p.MessageID, ".load@example.test") {
				t.Fatalf("event %d of message %d: props %+v", ev.ID, seq, p)
			}
		}
		want := []track.EventID{track.EventReceived, track.EventQueued, track.EventDelivered}
		if len(ids) != 3 || ids[0] != want[0] || ids[1] != want[1] || ids[2] != want[2] {
			t.Fatalf("events of %s: %v, want %v", id, ids, want)
		}
		if d := evs[2]; d.Recipient != "to@example.test" || d.Partner != sink.Addr() || !strings.HasPrefix(d.Reply, "250") {
			t.Fatalf("delivered event: %+v", d)
		}
	}
}

func TestQueuedMessageHasPropertiesAndDefers(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()
	rec := &events{}
	comp := &fakeComponent{}
	r := startRelay(t, relay.Config{NextHop: down, RetryBase: time.Hour})
	r.SetRecorder(rec) // allowed before Run in real use; here it proves SetRecorder takes effect
	r.AddComponent(comp)
	res, err := smtpload.Load(context.Background(), smtpload.LoadOptions{Addr: r.Addr().String(), N: 1})
	if err != nil || res.Acked != 1 {
		t.Fatalf("load: %v", err)
	}
	id := queueID(res.Acks[0])
	ctx := context.Background()
	p, err := r.Messages().Properties(ctx, id)
	if err != nil || p.QueueID != id || p.Sender != "load@example.test" {
		t.Fatalf("Properties of a queued message: %+v, %v", p, err)
	}
	var def *track.Event
	for deadline := time.Now().Add(5 * time.Second); def == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, ev := range rec.of(id) {
			if ev.ID == track.EventDeferred {
				def = &ev
			}
		}
	}
	if def == nil || def.NextTry.Before(time.Now().Add(30*time.Minute)) || def.Reply == "" {
		t.Fatalf("deferred event: %+v", def)
	}
	st := r.Status()
	if st.QueueDepth != 1 || len(st.Components) != 1 || st.Components[0].Version != "6.5.7651.45" {
		t.Fatalf("status: %+v", st)
	}
	if _, ok := r.Component("tracking"); !ok {
		t.Fatal("added component not found")
	}
	if _, ok := r.Component("nope"); ok {
		t.Fatal("unknown component found")
	}
	if n := r.Flush(); n != 1 {
		t.Fatalf("flush moved %d messages, want 1", n)
	}
}

// fakeDNS answers MX and address lookups from tables, so that MX routing is tested without a
// real resolver.
type fakeDNS struct {
	mx    map[string][]*net.MX
	hosts map[string][]string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	return nil, notFound(name)
}

func (f fakeDNS) LookupHost(_ context.Context, name string) ([]string, error) {
	if h, ok := f.hosts[name]; ok {
		return h, nil
	}
	return nil, notFound(name)
}

func TestWithoutNextHopRoutesByMX(t *testing.T) {
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	_, port, _ := net.SplitHostPort(sink.Addr())
	dns := fakeDNS{mx: map[string][]*net.MX{
		"mx.test": {{Host: "127.0.0.1.", Pref: 10}},
		// The preferred exchanger is down; the second one takes the mail.
		"backup.test": {{Host: "127.0.0.3.", Pref: 5}, {Host: "127.0.0.1.", Pref: 20}},
	}}
	rec := &events{}
	r := startRelay(t, relay.Config{Resolver: dns, MXPort: port, Recorder: rec, RetryBase: time.Hour})
	c, err := smtp.Dial(r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := smtpload.Message(42, 600)
	if err := c.SendMail("s@mx.test", []string{"a@mx.test", "b@backup.test", "c@gone.test"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sink.Received(42) < 2 || sink.Others() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sink got message 42 %d times (want 2) and %d bounces (want 1)", sink.Received(42), sink.Others())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var delivered, failed []string
	rec.mu.Lock()
	for _, ev := range rec.evs {
		switch ev.ID {
		case track.EventDelivered:
			delivered = append(delivered, ev.Recipient+"@"+ev.Partner)
		case track.EventFailed:
			failed = append(failed, ev.Recipient+": "+ev.Reply)
		}
	}
	rec.mu.Unlock()
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "c@gone.test: 550 5.1.2") {
		t.Fatalf("failed events: %v", failed)
	}
	for _, d := range delivered {
		if !strings.HasSuffix(d, "@127.0.0.1:"+port) {
			t.Fatalf("delivered through %s", d)
		}
	}
	if len(delivered) != 3 { // a@mx.test, b@backup.test, and the bounce to s@mx.test
		t.Fatalf("delivered events: %v", delivered)
	}
}
