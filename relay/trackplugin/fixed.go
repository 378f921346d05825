package trackplugin

import (
	"context"
	"errors"
	"time"

	"relayfix/relay/track"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

// tracker is the fixed build's tracker. It writes each batch before it answers, so every Ack
// covers the whole batch.
type tracker struct {
	build // src: protocol 1 only

	synced uint64
	props  map[string]track.Properties // protocol 1: last properties seen per queued message
	recs   []tracklog.Record           // reused from batch to batch
}

func (t *tracker) Track(events []track.Event) (trackrpc.Ack, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recs := t.recs[:0]
	for _, ev := range events {
		if ev.Seq <= t.synced {
			continue // a replay of what is already written
		}
		recs = tracklog.AppendRecords(recs, ev, t.properties(ev), t.version)
	}
	err := t.w.Write(recs)
	clear(recs) // the next batch reuses the slice, not the strings of this one
	t.recs = recs[:0]
	if err != nil {
		t.log.Error("write tracking log", "error", err)
		return trackrpc.Ack{Synced: t.synced}, err
	}
	if n := len(events); n > 0 && events[n-1].Seq > t.synced {
		t.synced = events[n-1].Seq
	}
	return trackrpc.Ack{Synced: t.synced}, nil
}

// properties returns the event's snapshot (protocol 2), or reads it back (protocol 1). A message
// the relay has already removed is not an error: its record is written from what is known.
func (t *tracker) properties(ev track.Event) *track.Properties {
	if ev.Props != nil {
		return ev.Props
	}
	if t.src == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := t.src.Properties(ctx, ev.QueueID)
	switch {
	case err == nil:
		t.remember(ev, p)
		return &p
	case errors.Is(err, track.ErrNoMessage):
		if p, ok := t.props[ev.QueueID]; ok {
			t.remember(ev, p)
			return &p
		}
		t.log.Warn("message already removed; writing the event without its properties", "queue_id", ev.QueueID, "seq", ev.Seq)
	default:
		t.log.Warn("read message properties", "queue_id", ev.QueueID, "error", err)
	}
	return nil
}

// remember keeps a message's properties for its later events, until its last one.
func (t *tracker) remember(ev track.Event, p track.Properties) {
	if final(ev) {
		delete(t.props, ev.QueueID)
		return
	}
	t.props[ev.QueueID] = p
}

func (t *tracker) Sync() (trackrpc.Ack, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackrpc.Ack{Synced: t.synced}, nil
}
