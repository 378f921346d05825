package trackplugin

import (
	"context"
	"sync"
	"time"

	"relayfix/relay/track"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

// asyncTracker is the service pack 2 design: Track queues the events and returns at once, and a
// worker writes the records later, reading each queued message's properties back from the relay
// when it gets to it. That read is the defect: see message.
type asyncTracker struct {
	build

	cond    *sync.Cond
	queue   []track.Event
	synced  uint64
	pending uint64 // highest seq queued
	props   map[string]*track.Properties
}

// Track acknowledges what is written so far and leaves the batch to the worker.
func (t *asyncTracker) Track(events []track.Event) (trackrpc.Ack, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ev := range events {
		if ev.Seq > t.pending {
			t.queue = append(t.queue, ev)
			t.pending = ev.Seq
		}
	}
	t.cond.Broadcast()
	return trackrpc.Ack{Synced: t.synced}, nil
}

// Sync waits up to a second for the worker to catch up.
func (t *asyncTracker) Sync() (trackrpc.Ack, error) {
	deadline := time.Now().Add(time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.synced < t.pending && time.Now().Before(deadline) {
		t.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		t.mu.Lock()
	}
	return trackrpc.Ack{Synced: t.synced}, nil
}

func (t *asyncTracker) work() {
	for {
		t.mu.Lock()
		for len(t.queue) == 0 {
			t.cond.Wait()
		}
		batch := t.queue
		t.queue = nil
		t.mu.Unlock()

		var recs []tracklog.Record
		for _, ev := range batch {
			recs = append(recs, recordsFor(ev, t.message(ev), t.version)...)
		}
		if err := t.w.Write(recs); err != nil {
			t.log.Error("write tracking log", "error", err)
			continue
		}
		t.mu.Lock()
		t.synced = batch[len(batch)-1].Seq
		t.cond.Broadcast()
		t.mu.Unlock()
	}
}

// message returns the message object an event is about. While a message is queued its properties
// are read from the relay; its final events use the copy kept from its earlier ones, since the
// relay removes a message once it is done with it.
//
// This is the KB 910618 defect: the read happens on the worker, after the event was acknowledged,
// so under load the relay has often delivered and removed the message in the meantime. The lookup
// then fails, and the failure is logged but not handled: the caller gets no message object.
func (t *asyncTracker) message(ev track.Event) *track.Properties {
	last := final(ev)
	if p, ok := t.props[ev.QueueID]; ok && last {
		delete(t.props, ev.QueueID)
		return p
	}
	t.mu.Lock()
	src := t.src
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := src.Properties(ctx, ev.QueueID)
	if err != nil {
		t.log.Warn("message properties unavailable", "queue_id", ev.QueueID, "event", int(ev.ID), "seq", ev.Seq, "error", err.Error())
		return nil
	}
	if !last {
		t.props[ev.QueueID] = &p
	}
	return &p
}

// recordsFor builds an event's records from its message object. It copies the object without
// checking it: when message returned nil this is a nil pointer dereference, and the process dies.
func recordsFor(ev track.Event, msg *track.Properties, version string) []tracklog.Record {
	props := *msg
	return tracklog.FromEvent(ev, &props, version)
}
