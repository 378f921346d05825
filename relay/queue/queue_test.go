package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"relayfix/relay/courier"
	"relayfix/relay/spool"
	"relayfix/relay/track"
)

func openQueue(t *testing.T, dir string, segSize int64) (*Queue, *spool.Spool) {
	t.Helper()
	sp, msgs, err := spool.Open(dir, spool.Options{SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Spool: sp, RetryBase: time.Hour, Hostname: "relay.test"}, msgs), sp
}

func accept(t *testing.T, q *Queue, from string, rcpts ...string) string {
	t.Helper()
	id := q.NewID()
	env := &spool.Envelope{ID: id, Sender: from, Recipients: rcpts, Received: time.Now().UTC(), Size: 1200}
	body := "Subject: test " + id + "\r\n\r\n" + strings.Repeat("x", 1000) + "\r\n"
	if err := q.Accept(context.Background(), env, nil, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return id
}

func next(t *testing.T, q *Queue) *Delivery {
	t.Helper()
	d, err := q.Next(context.Background(), time.Second)
	if err != nil || d == nil {
		t.Fatalf("Next: %v, %v", d, err)
	}
	return d
}

func TestPartialDeliveryKeepsOnlyPendingRecipients(t *testing.T) {
	dir := t.TempDir()
	q, sp := openQueue(t, dir, 0)
	id := accept(t, q, "s@example.test", "a@x.test", "b@x.test", "c@x.test")
	d := next(t, q)
	q.Done(d, []courier.Result{{OK: true, Reply: "250 ok"}, {Temporary: true, Reply: "451 later"}, {OK: true, Reply: "250 ok"}})
	if q.Len() != 1 {
		t.Fatalf("queue length %d", q.Len())
	}
	if got := q.Flush(); got != 1 {
		t.Fatalf("flush moved %d", got)
	}
	d = next(t, q)
	if len(d.Recipients) != 1 || d.Recipients[0] != "b@x.test" {
		t.Fatalf("retry goes to %v, want only b@x.test", d.Recipients)
	}
	q.Release(d)
	sp.Close()
	// The same holds after a restart.
	q, sp = openQueue(t, dir, 0)
	defer sp.Close()
	if l := q.List(0); len(l) != 1 || !l[0].NextTry.After(time.Now().Add(30*time.Minute)) {
		t.Fatalf("the retry time did not survive the restart: %+v", l)
	}
	q.Flush()
	d = next(t, q)
	if d.ID != id || len(d.Recipients) != 1 || d.Recipients[0] != "b@x.test" {
		t.Fatalf("after restart: %s %v", d.ID, d.Recipients)
	}
	if l := q.List(0); len(l) != 1 || l[0].Attempts != 1 || l[0].LastError != "451 later" {
		t.Fatalf("list after restart: %+v", l)
	}
}

func TestPermanentFailureBouncesToSenderOnly(t *testing.T) {
	q, sp := openQueue(t, t.TempDir(), 0)
	defer sp.Close()
	var evs []track.Event
	q.SetRecorder(track.RecorderFunc(func(ev track.Event) { evs = append(evs, ev) }))
	id := accept(t, q, "s@example.test", "a@x.test")
	d := next(t, q)
	q.Done(d, []courier.Result{{Reply: "550 5.1.1 no such user"}})
	if _, err := q.Properties(context.Background(), id); !errors.Is(err, track.ErrNoMessage) {
		t.Fatalf("bounced message still in the queue: %v", err)
	}
	b := next(t, q)
	if b.Sender != "" || len(b.Recipients) != 1 || b.Recipients[0] != "s@example.test" {
		t.Fatalf("bounce envelope: <%s> -> %v", b.Sender, b.Recipients)
	}
	body, _ := io.ReadAll(b.Body)
	if !strings.Contains(string(body), "report-type=delivery-status") || !strings.Contains(string(body), "Status: 5.1.1") {
		t.Fatalf("bounce body:\n%s", body)
	}
	// A bounce that cannot be delivered is not bounced again (null sender).
	q.Done(b, []courier.Result{{Reply: "550 no"}})
	if q.Len() != 0 {
		t.Fatalf("queue holds %d after a failed bounce", q.Len())
	}
	var ids []track.EventID
	for _, ev := range evs {
		if ev.QueueID == id {
			ids = append(ids, ev.ID)
		}
	}
	want := fmt.Sprint([]track.EventID{track.EventReceived, track.EventQueued, track.EventFailed, track.EventBounced})
	if fmt.Sprint(ids) != want {
		t.Fatalf("events %v, want %s", ids, want)
	}
}

func TestExpiredMessageBounces(t *testing.T) {
	sp, _, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	q := New(Config{Spool: sp, Lifetime: time.Nanosecond, Hostname: "relay.test"}, nil)
	accept(t, q, "s@example.test", "a@x.test")
	d := next(t, q)
	q.Done(d, []courier.Result{{Temporary: true, Reply: "451 4.4.1 still down"}})
	if n := q.Counters()[CountExpired]; n != 1 {
		t.Fatalf("expired counter %d", n)
	}
	b := next(t, q)
	body, _ := io.ReadAll(b.Body)
	if b.Sender != "" || !strings.Contains(string(body), "Status: 5.4.1") {
		t.Fatalf("expiry bounce <%s>:\n%s", b.Sender, body)
	}
}

func TestCompactionFreesSegmentsPinnedByADeferredMessage(t *testing.T) {
	dir := t.TempDir()
	q, sp := openQueue(t, dir, 4<<10)
	old := accept(t, q, "s@example.test", "a@x.test")
	d := next(t, q)
	q.Done(d, []courier.Result{{Temporary: true, Reply: "451 later"}}) // deferred for an hour
	for range 40 {
		accept(t, q, "s@example.test", "a@x.test")
		d := next(t, q)
		q.Done(d, []courier.Result{{OK: true, Reply: "250 ok"}})
	}
	accept(t, q, "s@example.test", "a@x.test") // makes the last removals reach the disk
	before := sp.Segments()
	if before < 5 {
		t.Fatalf("only %d segments: the test needs the deferred message to pin several", before)
	}
	if n := q.Compact(context.Background()); n != 1 {
		t.Fatalf("compacted %d messages, want 1", n)
	}
	if after := sp.Segments(); after > 2 {
		t.Fatalf("%d segments after compaction (before %d)", after, before)
	}
	sp.Close()
	q, sp = openQueue(t, dir, 4<<10)
	defer sp.Close()
	l := q.List(0)
	if len(l) != 2 || l[0].ID != old || l[0].Attempts != 1 || l[0].NextTry.IsZero() {
		t.Fatalf("after compaction and restart: %+v", l)
	}
	q.Flush()
	for range 2 {
		d := next(t, q)
		if d.ID == old {
			body, _ := io.ReadAll(d.Body)
			if !strings.Contains(string(body), "Subject: test "+old) {
				t.Fatalf("moved body: %q", body[:40])
			}
		}
		q.Release(d)
	}
}

// Compact may write a ready message again, and the spool drop its old segment, between the
// moment Next takes the message and the moment it opens the body. The message must still be
// delivered, not left out of both the ready and the deferred list until a restart.
func TestMessageCompactedAsItIsTakenIsStillDelivered(t *testing.T) {
	q, sp := openQueue(t, t.TempDir(), 1<<10) // every message fills a segment
	defer sp.Close()
	moved := accept(t, q, "s@example.test", "a@x.test")
	accept(t, q, "s@example.test", "b@x.test") // starts the second segment: the first is pinned
	atOpen, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	q.hooks.beforeOpen = func() {
		once.Do(func() {
			atOpen <- struct{}{}
			<-proceed
		})
	}
	type taken struct {
		d   *Delivery
		err error
	}
	took := make(chan taken, 1)
	q.hooks.afterSnapshot = func() {
		go func() {
			d, err := q.Next(context.Background(), time.Second)
			took <- taken{d, err}
		}()
		<-atOpen // Next holds the message, with the location Compact is about to replace
	}
	q.mu.Lock()
	loc := q.msgs[moved].body
	q.mu.Unlock()
	if n := q.Compact(context.Background()); n != 1 {
		t.Fatalf("compacted %d messages, want 1", n)
	}
	if _, err := sp.Open(loc); err == nil {
		t.Fatalf("the message's old segment is still there: the race did not happen")
	}
	close(proceed)

	delivered := map[string]bool{}
	deliver := func(d *Delivery) {
		if _, err := io.ReadAll(d.Body); err != nil {
			t.Fatalf("read body of %s: %v", d.ID, err)
		}
		delivered[d.ID] = true
		q.Done(d, []courier.Result{{OK: true, Reply: "250 ok"}})
	}
	if r := <-took; r.d != nil {
		deliver(r.d)
	} else {
		t.Logf("Next: %v", r.err)
	}
	q.Flush() // a message put back on the deferred list is due now
	for {
		d, err := q.Next(context.Background(), 200*time.Millisecond)
		if err != nil {
			t.Logf("Next: %v", err)
			continue
		}
		if d == nil {
			break
		}
		deliver(d)
	}
	if !delivered[moved] || q.Len() != 0 {
		t.Fatalf("message %s delivered: %v; %d message(s) left in the queue: %+v", moved, delivered[moved], q.Len(), q.List(0))
	}
}
