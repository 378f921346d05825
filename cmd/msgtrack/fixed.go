//go:build !msgtrack_prefix

package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"relayfix/internal/stamp"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

// protocols offers protocol 2 (properties travel with the event) and, for hosts that know only
// protocol 1, a synchronous protocol 1 that copes with a message that is already gone.
func protocols(w *tracklog.Writer, logger hclog.Logger) map[int]plugin.PluginSet {
	t := &tracker{w: w, log: logger, version: stamp.Version(), props: make(map[string]track.Properties)}
	return trackrpc.Sets(nil, map[int]trackrpc.Tracker{1: t, 2: t}, 1, 2)
}

// tracker writes each batch before it answers, so every Ack covers the whole batch.
type tracker struct {
	w       *tracklog.Writer
	log     hclog.Logger
	version string

	mu     sync.Mutex
	synced uint64
	src    track.MessageSource         // protocol 1 only
	props  map[string]track.Properties // protocol 1: last properties seen per queued message
	recs   []tracklog.Record           // reused from batch to batch
}

func (t *tracker) Version() (string, error) { return t.version, nil }
func (t *tracker) Health() error            { return nil }

func (t *tracker) SetSource(src track.MessageSource) {
	t.mu.Lock()
	t.src = src
	t.mu.Unlock()
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
	switch ev.ID {
	case track.EventDelivered, track.EventFailed, track.EventBounced, track.EventExpired:
		delete(t.props, ev.QueueID)
	default:
		t.props[ev.QueueID] = p
	}
}

func (t *tracker) Sync() (trackrpc.Ack, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return trackrpc.Ack{Synced: t.synced}, nil
}
