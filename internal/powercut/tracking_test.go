package powercut

import (
	"context"
	"testing"
	"time"

	"relayfix/internal/lazyfs"
	"relayfix/relay/courier"
	"relayfix/relay/queue"
	"relayfix/relay/spool"
	"relayfix/relay/track"
	"relayfix/relay/trackhost"
	"relayfix/relay/trackjournal"
)

// TestPowerCutDeliveredBeforeTrackingSync is the cut that found delivered messages without a
// delivery record: the queue wrote a delivered message's removal to the spool before its delivery
// event was on the tracking journal's disk. The spool syncs a removal with the next message it
// accepts, the journal syncs every 50 ms, and a cut between the two kept the removal and dropped
// the event, so the message was neither delivered again nor recorded as delivered.
//
// The cut is made deterministic with the real spool, queue and tracking host in this process:
// a message is accepted and delivered, the next message's commit syncs whatever the spool was
// handed before it, and the power goes. Without the journal's flusher (the host is not running:
// its 50 ms have not passed) the message must still be in the spool after the boot, to be
// delivered again; with the flusher running the removal follows the event, and after the boot the
// message is gone and its delivery is in the journal.
func TestPowerCutDeliveredBeforeTrackingSync(t *testing.T) {
	lazyfs.Require(t)
	for _, tc := range []struct {
		name    string
		flusher bool // the tracking host runs (and its journal is synced) before the cut
	}{
		{"journal not yet synced", false},
		{"journal synced", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.powerOn(t)
			sp, _, err := spool.Open(r.root.Spool(), spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := trackhost.DefaultConfig()
			cfg.Binary = e.bins.TrackFixed
			cfg.Unverified = true
			h, err := trackhost.New(trackhost.Options{Root: r.root, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			hctx, stopHost := context.WithCancel(context.Background())
			if !tc.flusher {
				stopHost()
			}
			hostDone := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				if tc.flusher {
					close(started)
					hostDone <- h.Run(hctx)
					return
				}
				<-started // Run on a cancelled context only closes the journal: after the cut
				hostDone <- h.Run(hctx)
			}()
			q := queue.New(queue.Config{Spool: sp, Recorder: h}, nil)
			qctx, stopQueue := context.WithCancel(context.Background())
			queueDone := make(chan struct{})
			go func() { defer close(queueDone); q.Run(qctx) }()

			accept := func(id string) {
				t.Helper()
				env := &spool.Envelope{ID: id, Sender: "sender@example.test", Recipients: []string{"rcpt@example.test"},
					Received: time.Now(), Size: 32, MessageID: "<" + id + "@example.test>"}
				if err := q.Accept(context.Background(), env, nil, []byte("Subject: cut\r\n\r\nbody\r\n")); err != nil {
					t.Fatalf("accept %s: %v", id, err)
				}
			}
			accept("DELIVERED")
			d, err := q.Next(context.Background(), 5*time.Second)
			if err != nil || d == nil || d.ID != "DELIVERED" {
				t.Fatalf("next: %+v %v", d, err)
			}
			q.Done(d, []courier.Result{{OK: true, Reply: "250 2.0.0 ok", Partner: "127.0.0.1:25"}})
			if tc.flusher && !poll(10*time.Second, func() bool { return q.AwaitingTracking() == 0 }) {
				t.Fatalf("the removal still waits for the tracking journal after 10 s")
			}
			accept("NEXT") // its commit syncs every record the spool was handed before it

			r.cut(t, func() {
				stopQueue()
				<-queueDone
				if !tc.flusher {
					close(started)
				} else {
					stopHost()
				}
				<-hostDone // the journal's close fails: the power is gone
				sp.Close()
			})
			r.boot(t)

			sp2, msgs, err := spool.Open(r.root.Spool(), spool.Options{})
			if err != nil {
				t.Fatalf("spool after the cut: %v", err)
			}
			defer sp2.Close()
			inSpool := false
			for _, m := range msgs {
				inSpool = inSpool || m.Envelope.ID == "DELIVERED"
			}
			recorded := journalHas(t, r.root.Spool()+"/tracking", "DELIVERED", track.EventDelivered)
			if !inSpool && !recorded {
				t.Fatalf("after the cut the delivered message is neither in the spool (to be delivered again) nor recorded as delivered in the tracking journal")
			}
			if tc.flusher && (inSpool || !recorded) {
				t.Errorf("with the journal synced before the cut: in spool %v, delivery recorded %v; want false, true", inSpool, recorded)
			}
			if !tc.flusher && !inSpool {
				t.Errorf("the spool lost the message whose delivery event was not yet durable")
			}
		})
	}
}

// journalHas reports whether the tracking journal in dir holds an event id for queue id.
func journalHas(t *testing.T, dir, id string, ev track.EventID) bool {
	t.Helper()
	j, err := trackjournal.Open(dir, nil)
	if err != nil {
		t.Fatalf("tracking journal after the cut: %v", err)
	}
	defer j.Close()
	rd := j.NewReader(1)
	defer rd.Close()
	for {
		evs, err := rd.Next(context.Background(), 4096, 10*time.Millisecond)
		if err != nil {
			t.Fatalf("read tracking journal: %v", err)
		}
		if len(evs) == 0 {
			return false
		}
		for _, e := range evs {
			if e.QueueID == id && e.ID == ev {
				return true
			}
		}
	}
}
