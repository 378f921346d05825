package queue

import (
	"context"
	"fmt"
	"sort"
	"time"

	"relayfix/relay/track"
)

// Len returns the number of messages in the queue.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// Oldest returns when the oldest queued message was received; zero when the queue is empty.
func (q *Queue) Oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest time.Time
	for _, m := range q.msgs {
		if oldest.IsZero() || m.env.Received.Before(oldest) {
			oldest = m.env.Received
		}
	}
	return oldest
}

// Entry is one queued message as List shows it.
type Entry struct {
	ID         string
	Sender     string
	Recipients []string // those still to deliver
	Size       int64
	Received   time.Time
	Attempts   int
	NextTry    time.Time // zero: ready now
	LastError  string
}

// List returns up to limit queued messages (0: all), oldest first.
func (q *Queue) List(limit int) []Entry {
	q.mu.Lock()
	out := make([]Entry, 0, len(q.msgs))
	for _, m := range q.msgs {
		e := m.env
		done := make(map[int]bool, len(e.Done))
		for _, i := range e.Done {
			done[i] = true
		}
		var rcpts []string
		for i, r := range e.Recipients {
			if !done[i] {
				rcpts = append(rcpts, r)
			}
		}
		out = append(out, Entry{
			ID: e.ID, Sender: e.Sender, Recipients: rcpts, Size: e.Size, Received: e.Received,
			Attempts: e.Attempts, NextTry: e.NextTry, LastError: e.LastError,
		})
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Received.Equal(out[j].Received) {
			return out[i].Received.Before(out[j].Received)
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Properties implements track.MessageSource: the properties of a message while it is in the
// queue, and track.ErrNoMessage once it has left.
func (q *Queue) Properties(ctx context.Context, queueID string) (track.Properties, error) {
	if err := ctx.Err(); err != nil {
		return track.Properties{}, err
	}
	q.mu.Lock()
	m, ok := q.msgs[queueID]
	var p *track.Properties
	if ok {
		p = props(&m.env)
	}
	q.mu.Unlock()
	if !ok {
		return track.Properties{}, fmt.Errorf("message %s: %w", queueID, track.ErrNoMessage)
	}
	return *p, nil
}
