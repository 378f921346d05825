package queue

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"relayfix/relay/courier"
	"relayfix/relay/spool"
	"relayfix/relay/track"
)

// journal is a track.Journaled recorder whose sync the test moves by hand, as the tracking
// host's flusher moves its journal's.
type journal struct {
	mu      sync.Mutex
	next    uint64
	synced  uint64
	changed chan struct{}
	events  []track.Event
}

func newJournal() *journal { return &journal{changed: make(chan struct{})} }

func (j *journal) Record(ev track.Event) { j.RecordSeq(ev) }

func (j *journal) RecordSeq(ev track.Event) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.next++
	ev.Seq = j.next
	j.events = append(j.events, ev)
	return j.next
}

func (j *journal) Synced() (uint64, <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.synced, j.changed
}

// sync makes every event recorded so far durable.
func (j *journal) sync() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.synced = j.next
	close(j.changed)
	j.changed = make(chan struct{})
}

// live reopens the spool in dir and returns the ids it holds.
func live(t *testing.T, dir string) []string {
	t.Helper()
	sp, msgs, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.Envelope.ID)
	}
	return ids
}

// TestOutcomeWaitsForTrackingSync checks that a delivered, failed or expired message leaves the
// spool only once the journal has synced the events that ended it, that nothing waits when
// tracking keeps nothing, and that the queue's workers never wait for it.
func TestOutcomeWaitsForTrackingSync(t *testing.T) {
	tests := []struct {
		name     string
		rec      func() (track.Recorder, *journal)
		result   courier.Result
		lifetime time.Duration
		sync     bool // the journal syncs before the spool is closed
		wantLive bool
	}{
		{"delivered, journal not synced", journaled, courier.Result{OK: true, Reply: "250 ok"}, 0, false, true},
		{"delivered, journal synced", journaled, courier.Result{OK: true, Reply: "250 ok"}, 0, true, false},
		{"failed, journal not synced", journaled, courier.Result{Reply: "550 5.1.1 no such user"}, 0, false, true},
		{"expired, journal not synced", journaled, courier.Result{Temporary: true, Reply: "451 later"}, time.Nanosecond, false, true},
		{"expired, journal synced", journaled, courier.Result{Temporary: true, Reply: "451 later"}, time.Nanosecond, true, false},
		{"tracking discards", func() (track.Recorder, *journal) { return track.Discard, nil }, courier.Result{OK: true, Reply: "250 ok"}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, _, err := spool.Open(dir, spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rec, j := tt.rec()
			q := New(Config{Spool: sp, Recorder: rec, RetryBase: time.Hour, Lifetime: tt.lifetime, Hostname: "relay.test"}, nil)
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); q.Run(ctx) }()

			id := accept(t, q, "", "a@x.test") // no sender: a failure bounces nothing
			start := time.Now()
			q.Done(next(t, q), []courier.Result{tt.result})
			if d := time.Since(start); d > 20*time.Millisecond {
				t.Errorf("Done took %v: a worker must not wait for the journal", d)
			}
			if j != nil && q.AwaitingTracking() != 1 {
				t.Errorf("%d outcomes wait for the journal, want 1", q.AwaitingTracking())
			}
			if tt.sync {
				j.sync()
				deadline := time.Now().Add(5 * time.Second)
				for q.AwaitingTracking() != 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			stop() // without a sync the drain gives up on the journal after settleDrain
			<-done
			sp.Close()
			if got := slices.Contains(live(t, dir), id); got != tt.wantLive {
				t.Errorf("message in the spool after the outcome: %v, want %v", got, tt.wantLive)
			}
		})
	}
}

func journaled() (track.Recorder, *journal) { j := newJournal(); return j, j }
