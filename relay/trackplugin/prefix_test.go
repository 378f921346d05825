package trackplugin

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"relayfix/relay/track"
)

func TestPrefixMessage(t *testing.T) {
	a := message("A1", "bob@example.test")
	tests := []struct {
		name    string
		seen    bool // an earlier event of the message was tracked while it was queued
		removed bool // the relay has delivered and removed the message
		ev      track.EventID
		want    bool // message returns a message object
	}{
		{"queued message", false, false, track.EventReceived, true},
		{"last event of a message still queued", false, false, track.EventDelivered, true},
		{"last event of a removed message seen before", true, true, track.EventDelivered, true},
		{"removed message never seen: the KB 910618 race", false, true, track.EventDelivered, false},
		{"non-final event of a removed message seen before", true, true, track.EventDeferred, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, w := logDir(t)
			tr := newPrefix(w, quiet(), "6.5.7638.1")
			q := newQueue(a)
			tr.SetSource(q)
			if tt.seen {
				if p := tr.message(event(1, track.EventReceived, "A1", nil)); p == nil {
					t.Fatalf("no message object for a queued message")
				}
			}
			if tt.removed {
				q.remove("A1")
			}
			p := tr.message(event(2, tt.ev, "A1", nil))
			if got := p != nil; got != tt.want {
				t.Fatalf("message returned %v, want a message object: %v", p, tt.want)
			}
			if p != nil && p.Sender != a.Sender {
				t.Errorf("message object %+v is not A1's", p)
			}
		})
	}
}

func TestPrefixRecordsForNilIsTheCrash(t *testing.T) {
	var (
		r     any
		stack string
	)
	func() {
		defer func() {
			r = recover()
			stack = string(debug.Stack())
		}()
		recordsFor(event(1, track.EventDelivered, "A1", nil), nil, "6.5.7638.1")
	}()
	err, ok := r.(runtime.Error)
	if !ok {
		t.Fatalf("recordsFor(nil) recovered %v, want a runtime error", r)
	}
	if !strings.Contains(err.Error(), "nil pointer dereference") {
		t.Errorf("recordsFor(nil) panicked with %q, want a nil pointer dereference", err)
	}
	// The host names the crash by the first frame below the runtime's; it must be recordsFor.
	if !strings.Contains(stack, "relay/trackplugin.recordsFor(") {
		t.Errorf("the panic's stack does not name trackplugin.recordsFor:\n%s", stack)
	}
}

func TestPrefixAcksBeforeWriting(t *testing.T) {
	dir, w := logDir(t)
	tr := newPrefix(w, quiet(), "6.5.7638.1")
	q := newQueue(message("A1", "bob@example.test"), message("B2", "dave@example.test"))
	tr.SetSource(q)
	batch := []track.Event{event(1, track.EventReceived, "A1", nil), event(2, track.EventReceived, "B2", nil)}

	// With no worker yet, Track returns at once: it has taken the events and written nothing.
	ack, err := tr.Track(batch)
	if err != nil || ack.Synced != 0 {
		t.Fatalf("Track = %+v, %v; want an ack of 0 before anything is written", ack, err)
	}
	if q.reads != 0 {
		t.Errorf("Track read %d message(s) back; the worker does that later", q.reads)
	}
	if recs := written(t, dir); len(recs) != 0 {
		t.Fatalf("records written before the worker ran: %+v", recs)
	}

	// The worker writes them later, reading each message back, and Sync sees it catch up. The
	// worker outlives the test, blocked waiting for more events.
	go tr.work()
	ack, err = tr.Sync()
	if err != nil || ack.Synced != 2 {
		t.Fatalf("Sync = %+v, %v; want 2 once the worker has written the batch", ack, err)
	}
	recs := written(t, dir)
	if len(recs) != 2 || recs[0].Sender != "alice@example.test" || recs[1].Seq != 2 {
		t.Errorf("worker wrote %+v, want seq 1 and 2 with their properties", recs)
	}
}
