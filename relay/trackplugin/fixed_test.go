package trackplugin

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

type seqRcpt struct {
	seq  uint64
	rcpt string
}

func TestFixedWritesEveryEventBeforeAck(t *testing.T) {
	a := message("A1", "bob@example.test", "carol@example.test")
	b := message("B2", "dave@example.test")
	tests := []struct {
		name    string
		batches [][]track.Event
		acks    []uint64
		want    []seqRcpt // records on disk, in order
	}{
		{
			name:    "one message-level event per recipient",
			batches: [][]track.Event{{event(1, track.EventReceived, "A1", &a)}},
			acks:    []uint64{1},
			want:    []seqRcpt{{1, "bob@example.test"}, {1, "carol@example.test"}},
		},
		{
			name: "per-recipient events and several messages in one batch",
			batches: [][]track.Event{{
				event(1, track.EventReceived, "A1", &a),
				event(2, track.EventReceived, "B2", &b),
				func() track.Event {
					ev := event(3, track.EventDelivered, "A1", &a)
					ev.Recipient = "carol@example.test"
					return ev
				}(),
			}},
			acks: []uint64{3},
			want: []seqRcpt{{1, "bob@example.test"}, {1, "carol@example.test"}, {2, "dave@example.test"}, {3, "carol@example.test"}},
		},
		{
			name: "a replayed batch is acknowledged and not written twice",
			batches: [][]track.Event{
				{event(1, track.EventReceived, "B2", &b), event(2, track.EventQueued, "B2", &b)},
				{event(1, track.EventReceived, "B2", &b), event(2, track.EventQueued, "B2", &b), event(3, track.EventDelivered, "B2", &b)},
			},
			acks: []uint64{2, 3},
			want: []seqRcpt{{1, "dave@example.test"}, {2, "dave@example.test"}, {3, "dave@example.test"}},
		},
		{
			name:    "an empty batch acknowledges nothing new",
			batches: [][]track.Event{{event(1, track.EventReceived, "B2", &b)}, nil},
			acks:    []uint64{1, 1},
			want:    []seqRcpt{{1, "dave@example.test"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, w := logDir(t)
			tr := newFixed(w, quiet(), "6.5.7651.45")
			for i, batch := range tt.batches {
				ack, err := tr.Track(batch)
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				if ack.Synced != tt.acks[i] {
					t.Fatalf("batch %d: ack %d, want %d", i, ack.Synced, tt.acks[i])
				}
				// Acknowledged means written: the records are on disk before Track returns.
				var got uint64
				for _, r := range written(t, dir) {
					got = max(got, r.Seq)
				}
				if got < ack.Synced {
					t.Fatalf("batch %d: acknowledged seq %d but the log holds up to %d", i, ack.Synced, got)
				}
			}
			recs := written(t, dir)
			if len(recs) != len(tt.want) {
				t.Fatalf("%d records written, want %d: %+v", len(recs), len(tt.want), recs)
			}
			for i, r := range recs {
				if r.Seq != tt.want[i].seq || r.Recipient != tt.want[i].rcpt {
					t.Errorf("record %d: seq %d recipient %q, want seq %d recipient %q", i, r.Seq, r.Recipient, tt.want[i].seq, tt.want[i].rcpt)
				}
				if r.Sender != "alice@example.test" || r.ServiceVersion != "6.5.7651.45" {
					t.Errorf("record %d: sender %q version %q: properties or version missing", i, r.Sender, r.ServiceVersion)
				}
			}
			ack, err := tr.Sync()
			if err != nil || ack.Synced != tt.acks[len(tt.acks)-1] {
				t.Errorf("Sync = %+v, %v; want the last ack %d", ack, err, tt.acks[len(tt.acks)-1])
			}
		})
	}
}

func TestFixedDoesNotAckWhatItCouldNotWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tracking")
	now := day
	w := tracklog.NewWriter(dir, "relayfix msgtrack test", func() time.Time { return now })
	defer w.Close()
	tr := newFixed(w, quiet(), "6.5.7651.45")
	a := message("A1", "bob@example.test")
	if ack, err := tr.Track([]track.Event{event(1, track.EventReceived, "A1", &a)}); err != nil || ack.Synced != 1 {
		t.Fatalf("first batch: %+v, %v", ack, err)
	}

	// The next day's file cannot be opened: the log directory has become a plain file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	now = day.AddDate(0, 0, 1)
	batch := []track.Event{event(2, track.EventDelivered, "A1", &a)}
	ack, err := tr.Track(batch)
	if err == nil {
		t.Fatalf("Track into an unwritable log succeeded")
	}
	if ack.Synced != 1 {
		t.Errorf("ack after a failed write is %d, want the previous 1", ack.Synced)
	}
	if ack, _ := tr.Sync(); ack.Synced != 1 {
		t.Errorf("Sync after a failed write acks %d, want 1", ack.Synced)
	}

	// Once the directory is back, the host's retry of the batch is written and acknowledged.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	ack, err = tr.Track(batch)
	if err != nil || ack.Synced != 2 {
		t.Fatalf("retry: %+v, %v; want ack 2", ack, err)
	}
	recs, err := tracklog.ReadFile(filepath.Join(dir, tracklog.FileName(now)))
	if err != nil || len(recs) != 1 || recs[0].Seq != 2 {
		t.Errorf("next day's log holds %+v, %v; want the one record of seq 2", recs, err)
	}
}

func TestFixedProtocol1CopesWithRemovedMessages(t *testing.T) {
	dir, w := logDir(t)
	tr := newFixed(w, quiet(), "6.5.7651.45")
	q := newQueue(message("A1", "bob@example.test"), message("B2", "dave@example.test"))
	tr.SetSource(q)

	// Over protocol 1 events carry no properties: the tracker reads them back.
	if ack, err := tr.Track([]track.Event{event(1, track.EventReceived, "A1", nil), event(2, track.EventReceived, "B2", nil)}); err != nil || ack.Synced != 2 {
		t.Fatalf("received: %+v, %v", ack, err)
	}
	// The relay delivers and removes both before their last events reach the tracker; B2's
	// properties were seen, C3 was never seen at all.
	q.remove("A1")
	q.remove("B2")
	batch := []track.Event{
		event(3, track.EventDelivered, "A1", nil),
		event(4, track.EventDelivered, "B2", nil),
		event(5, track.EventDelivered, "C3", nil),
	}
	ack, err := tr.Track(batch)
	if err != nil || ack.Synced != 5 {
		t.Fatalf("delivered: %+v, %v; want ack 5", ack, err)
	}
	want := []struct {
		seq    uint64
		queue  string
		sender string
	}{
		{1, "A1", "alice@example.test"},
		{2, "B2", "alice@example.test"},
		{3, "A1", "alice@example.test"}, // from the properties kept since seq 1
		{4, "B2", "alice@example.test"},
		{5, "C3", ""}, // written from the event alone
	}
	recs := written(t, dir)
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		if r.Seq != want[i].seq || r.QueueID != want[i].queue || r.Sender != want[i].sender {
			t.Errorf("record %d: seq %d queue %s sender %q, want seq %d queue %s sender %q",
				i, r.Seq, r.QueueID, r.Sender, want[i].seq, want[i].queue, want[i].sender)
		}
	}
	if len(tr.props) != 0 {
		t.Errorf("properties kept after the messages' last events: %v", tr.props)
	}
	if q.reads != 5 {
		t.Errorf("%d reads from the relay, want one per event (5)", q.reads)
	}
}
