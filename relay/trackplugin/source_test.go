package trackplugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

// queue is a fake relay queue: the message source a protocol 1 tracker reads properties back
// from. remove is what the relay does once it has delivered a message.
type queue struct {
	mu    sync.Mutex
	msgs  map[string]track.Properties
	reads int
}

func newQueue(msgs ...track.Properties) *queue {
	q := &queue{msgs: make(map[string]track.Properties)}
	for _, m := range msgs {
		q.msgs[m.QueueID] = m
	}
	return q
}

func (q *queue) Properties(ctx context.Context, queueID string) (track.Properties, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reads++
	p, ok := q.msgs[queueID]
	if !ok {
		return track.Properties{}, fmt.Errorf("message %s: %w", queueID, track.ErrNoMessage)
	}
	return p, nil
}

func (q *queue) remove(queueID string) {
	q.mu.Lock()
	delete(q.msgs, queueID)
	q.mu.Unlock()
}

var day = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func message(id string, rcpts ...string) track.Properties {
	return track.Properties{
		QueueID:    id,
		MessageID:  "<" + id + "@relay.test>",
		Sender:     "alice@example.test",
		Recipients: rcpts,
		Size:       1234,
		Server:     "relay.test",
		Received:   day,
	}
}

func event(seq uint64, id track.EventID, queueID string, props *track.Properties) track.Event {
	return track.Event{Seq: seq, Time: day.Add(time.Duration(seq) * time.Millisecond), ID: id, QueueID: queueID, Props: props}
}

// logDir returns a tracking log directory and a writer into it whose clock stays on one day, so
// that every record lands in one file.
func logDir(t *testing.T) (string, *tracklog.Writer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tracking")
	w := tracklog.NewWriter(dir, "relayfix msgtrack test", func() time.Time { return day })
	t.Cleanup(func() { w.Close() })
	return dir, w
}

// written returns the records in dir's log file, in the order written; none if there is no file.
func written(t *testing.T, dir string) []tracklog.Record {
	t.Helper()
	recs, err := tracklog.ReadFile(filepath.Join(dir, tracklog.FileName(day)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read tracking log: %v", err)
	}
	return recs
}

func quiet() hclog.Logger { return hclog.NewNullLogger() }
