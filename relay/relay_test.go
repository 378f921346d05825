package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	"relayfix/relay/courier"
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

// fakeCourier answers each recipient by its local part: ok@ is delivered, temp@ refused for now,
// anything else refused for good.
type fakeCourier struct {
	mu     sync.Mutex
	closed int
}

func (f *fakeCourier) Deliver(_ context.Context, _ string, rcpts []string, body *io.SectionReader) []courier.Result {
	if _, err := io.ReadAll(io.NewSectionReader(body, 0, body.Size())); err != nil {
		panic(err)
	}
	res := make([]courier.Result, len(rcpts))
	for i, r := range rcpts {
		switch {
		case strings.HasPrefix(r, "ok@"), strings.HasPrefix(r, "s@"):
			res[i] = courier.Result{OK: true, Reply: "250 ok", Partner: "fake.test:25"}
		case strings.HasPrefix(r, "temp@"):
			res[i] = courier.Result{Temporary: true, Reply: "451 4.3.0 later", Partner: "fake.test:25"}
		default:
			res[i] = courier.Result{Reply: "550 5.1.1 no such user", Partner: "fake.test:25"}
		}
	}
	return res
}

func (f *fakeCourier) Close() {
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
}

// The relay delivers through the Deliverer its configuration names, and records each outcome
// with the partner the Deliverer reports.
func TestDeliversThroughTheConfiguredCourier(t *testing.T) {
	rec := &events{}
	fake := &fakeCourier{}
	r := startRelay(t, relay.Config{NextHop: "unused.test:25", Courier: func() courier.Deliverer { return fake },
		Workers: 1, Recorder: rec, RetryBase: time.Hour})
	c, err := smtp.Dial(r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("s@example.test", []string{"ok@x.test", "temp@x.test", "gone@x.test"}, bytes.NewReader(smtpload.Message(1, 200))); err != nil {
		t.Fatal(err)
	}
	want := map[track.EventID]string{
		track.EventDelivered: "ok@x.test 250 ok",
		track.EventDeferred:  "temp@x.test 451 4.3.0 later",
		track.EventFailed:    "gone@x.test 550 5.1.1 no such user",
		track.EventBounced:   " 550 5.1.1 no such user",
	}
	got := map[track.EventID]string{}
	for deadline := time.Now().Add(10 * time.Second); len(got) < len(want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("events %v, want %v", got, want)
		}
		rec.mu.Lock()
		for _, ev := range rec.evs {
			if _, ok := want[ev.ID]; ok && ev.Props != nil && ev.Props.Sender == "s@example.test" {
				got[ev.ID] = ev.Recipient + " " + ev.Reply
				if ev.ID != track.EventBounced && ev.Partner != "fake.test:25" {
					t.Errorf("event %d: partner %q, want the courier's", ev.ID, ev.Partner)
				}
			}
		}
		rec.mu.Unlock()
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("event %d: %q, want %q", id, got[id], w)
		}
	}
	q := r.Queue(0)
	if len(q) == 0 || q[0].Sender != "s@example.test" || len(q[0].Recipients) != 1 || q[0].Recipients[0] != "temp@x.test" || q[0].Attempts != 1 {
		t.Fatalf("queue: %+v", q)
	}
}

// A shutdown does not wait out a next hop that stalls: once the drain time is over, the delivery
// under way is cut off, and its message stays queued for a later try: not lost, not bounced.
func TestShutdownCutsOffAStalledDeliveryAndKeepsTheMessage(t *testing.T) {
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	stalled, release := make(chan int, 1), make(chan struct{})
	defer close(release)
	sink.SetReply(func(seq int) error {
		stalled <- seq
		<-release // never answers the end of DATA while the test runs
		return nil
	})
	root := layout.Root(t.TempDir())
	const drain = 500 * time.Millisecond
	cfg := relay.Config{Root: root, Listen: "127.0.0.1:0", NextHop: sink.Addr(), DrainTimeout: drain, RetryBase: time.Hour}
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); r.Addr() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("relay did not listen")
		}
	}
	res, err := smtpload.Load(context.Background(), smtpload.LoadOptions{Addr: r.Addr().String(), N: 1, From: "s@example.test"})
	if err != nil || res.Acked != 1 {
		t.Fatalf("load: %v, acked %d", err, res.Acked)
	}
	select {
	case <-stalled: // the delivery is under way, waiting for the next hop
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the next hop")
	}
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second): // the delivery timeout is a minute
		t.Fatal("Run did not return: the shutdown waits for the stalled delivery")
	}
	took := time.Since(t0)
	t.Logf("shutdown took %v with a delivery stalled (drain %v)", took, drain)
	if took < drain {
		t.Errorf("shutdown took %v: the delivery was not given the drain time", took)
	}
	// The message is still queued, once, deferred, with no bounce.
	cfg.Courier = func() courier.Deliverer { return &fakeCourier{} }
	r2, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := r2.Queue(0)
	if len(q) != 1 || q[0].QueueID != queueID(res.Acks[0]) || q[0].Sender != "s@example.test" || q[0].Attempts != 1 || q[0].LastError == "" {
		t.Fatalf("queue after the shutdown: %+v, want the message that was cut off", q)
	}
}
