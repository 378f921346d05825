// Package queue is relayd's queue manager: the in-memory index of the messages in the spool,
// the order in which they are handed to delivery workers, retries with backoff, expiry, bounces,
// and the tracking events of every step.
//
// The index holds envelopes only, never bodies: a delivery worker reads the body from the spool
// when it sends the message. Every change of a message's state goes to the spool before the
// message leaves the queue, so the queue can be rebuilt from the spool after a crash.
//
// The outcome of a delivery attempt goes to the spool only after its tracking events are on disk
// (settle.go): the tracking journal syncs in rounds while the spool syncs a removal with the next
// message it accepts, and a message removed ahead of its delivery record could otherwise vanish in
// a power cut, neither delivered again nor recorded. Waiting costs a duplicate delivery at worst.
package queue

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"relayfix/relay/courier"
	"relayfix/relay/dsn"
	"relayfix/relay/spool"
	"relayfix/relay/track"
)

// Config configures a Queue.
type Config struct {
	Spool     *spool.Spool
	Recorder  track.Recorder // nil: track.Discard
	Lifetime  time.Duration  // give up and bounce after this long in the queue (default 5 days)
	RetryBase time.Duration  // first retry delay (default 1 minute)
	RetryMax  time.Duration  // longest retry delay (default 1 hour)
	Hostname  string         // this relay's name, for bounces
	Logger    *slog.Logger
}

// Counter names reported in the relay's status.
const (
	CountReceived  = "received"
	CountDelivered = "delivered"
	CountDeferred  = "deferred"
	CountBounced   = "bounced"
	CountFailed    = "failed"
	CountExpired   = "expired"
)

type msg struct {
	env      spool.Envelope // guarded by Queue.mu
	body     spool.Body
	inFlight bool
	heapIdx  int // index in Queue.deferred, -1 when not there
}

// Queue is the queue manager.
type Queue struct {
	cfg      Config
	spool    *spool.Spool
	rec      atomic.Pointer[track.Recorder]
	counters map[string]*atomic.Uint64

	signal chan struct{} // a message became ready
	wake   chan struct{} // the deferred heap's head changed

	mu       sync.Mutex
	msgs     map[string]*msg
	ready    []*msg
	deferred msgHeap
	rnd      *rand.Rand
	lastID   uint64
	idTag    string // appended to every new id: the spool's generation

	// settleMu orders the spool writes of delivery outcomes; taken before mu.
	settleMu sync.Mutex
	settling []settlement  // guarded by mu: outcomes waiting for their tracking events, in order
	settled  chan struct{} // the settling list became non-empty

	hooks testHooks
}

// testHooks let a test stop the queue at the points where a race can strike. They are nil
// outside tests.
type testHooks struct {
	beforeOpen    func() // Next took a message and is about to open its body
	afterSnapshot func() // Compact read a message's location and is about to copy it
}

// NewID returns a queue id that no message in this spool had before: microseconds since the
// epoch, bumped past the last id handed out, in base 36, followed by "-" and the spool's
// generation when it is not 0: during a live upgrade two processes hand out ids at once.
func (q *Queue) NewID() string {
	now := uint64(time.Now().UnixMicro())
	q.mu.Lock()
	if now <= q.lastID {
		now = q.lastID + 1
	}
	q.lastID = now
	q.mu.Unlock()
	return strings.ToUpper(strconv.FormatUint(now, 36)) + q.idTag
}

// New builds the queue from the messages found in the spool. Messages whose next try is due
// are ready at once; the others wait in the deferred set.
func New(cfg Config, recovered []spool.Message) *Queue {
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 5 * 24 * time.Hour
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Minute
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		cfg:      cfg,
		spool:    cfg.Spool,
		counters: make(map[string]*atomic.Uint64),
		signal:   make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		settled:  make(chan struct{}, 1),
		msgs:     make(map[string]*msg, len(recovered)),
		rnd:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)),
	}
	q.SetRecorder(cfg.Recorder)
	for _, n := range []string{CountReceived, CountDelivered, CountDeferred, CountBounced, CountFailed, CountExpired} {
		q.counters[n] = new(atomic.Uint64)
	}
	if g := cfg.Spool.Generation(); g > 0 {
		q.idTag = "-" + strings.ToUpper(strconv.FormatUint(g, 36))
	}
	q.Adopt(recovered)
	return q
}

// Adopt queues messages read from the spool: at start, and those a successor relayd takes over
// from the process it replaces (spool.Adopt).
func (q *Queue) Adopt(recovered []spool.Message) {
	now := time.Now()
	q.mu.Lock()
	for _, r := range recovered {
		m := &msg{env: r.Envelope, body: r.Body, heapIdx: -1}
		m.env.Intern()
		stamp, _, _ := strings.Cut(m.env.ID, "-")
		if v, err := strconv.ParseUint(strings.ToLower(stamp), 36, 64); err == nil && v > q.lastID {
			q.lastID = v
		}
		q.msgs[m.env.ID] = m
		if m.env.NextTry.After(now) {
			heap.Push(&q.deferred, m)
		} else {
			q.ready = append(q.ready, m)
		}
	}
	ready := len(q.ready) > 0
	q.mu.Unlock()
	if ready {
		q.notify()
		q.poke()
	}
}

// SetRecorder replaces the tracking recorder (nil: track.Discard). Set it before Run: delivery
// outcomes still waiting for a replaced recorder's events are measured against the new one's.
func (q *Queue) SetRecorder(r track.Recorder) {
	if r == nil {
		r = track.Discard
	}
	q.rec.Store(&r)
}

// record hands ev to the recorder and returns the seq a track.Journaled recorder gave it, 0 when
// there is nothing to wait for.
func (q *Queue) record(ev track.Event) uint64 {
	ev.Time = ev.Time.UTC()
	rec := *q.rec.Load()
	if j, ok := rec.(track.Journaled); ok {
		return j.RecordSeq(ev)
	}
	rec.Record(ev)
	return 0
}

// Counters returns a snapshot of the delivery counters.
func (q *Queue) Counters() map[string]uint64 {
	out := make(map[string]uint64, len(q.counters))
	for k, v := range q.counters {
		out[k] = v.Load()
	}
	return out
}

func (q *Queue) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// props returns the tracking snapshot of env. Call with q.mu held or on a private copy.
func props(env *spool.Envelope) *track.Properties {
	return &track.Properties{
		QueueID:    env.ID,
		MessageID:  env.MessageID,
		Sender:     env.Sender,
		Recipients: append([]string(nil), env.Recipients...),
		Size:       env.Size,
		Subject:    env.Subject,
		ClientIP:   env.ClientIP,
		ClientName: env.ClientName,
		Helo:       env.Helo,
		Server:     env.Server,
		Received:   env.Received,
	}
}

// Accept stores a new message durably and queues it for delivery. When it returns nil the
// message is on disk and may be acknowledged.
func (q *Queue) Accept(ctx context.Context, env *spool.Envelope, header, body []byte) error {
	b, err := q.spool.Put(ctx, env, header, body)
	if err != nil {
		return err
	}
	m := &msg{env: *env, body: b, heapIdx: -1}
	m.env.Intern()
	p := props(env)
	q.mu.Lock()
	q.msgs[env.ID] = m // readable by Properties from here on, not yet deliverable
	q.mu.Unlock()
	q.counters[CountReceived].Add(1)
	now := time.Now()
	// Both events are recorded before a worker can see the message, so that a delivery is never
	// recorded ahead of them. The recorder only buffers: a tracker that reads the message back
	// later may still find it delivered and gone, which is the window KB 910618 is about.
	q.record(track.Event{Time: now, ID: track.EventReceived, QueueID: env.ID, Props: p})
	q.record(track.Event{Time: now, ID: track.EventQueued, QueueID: env.ID, Props: p})
	q.mu.Lock()
	q.ready = append(q.ready, m)
	q.mu.Unlock()
	q.notify()
	return nil
}

// Delivery is one message handed to a worker: the recipients still to try and its body.
type Delivery struct {
	ID         string
	Sender     string
	Recipients []string
	Body       *io.SectionReader
	idx        []int // indexes of Recipients in the envelope
	m          *msg
}

// Next waits for a message to deliver. It returns (nil, nil) when nothing came within idle,
// so the worker can close an idle connection, and ctx's error when ctx is done.
func (q *Queue) Next(ctx context.Context, idle time.Duration) (*Delivery, error) {
	var timer *time.Timer
	for {
		q.mu.Lock()
		for len(q.ready) > 0 {
			m := q.ready[0]
			q.ready[0] = nil
			q.ready = q.ready[1:]
			if len(q.ready) == 0 {
				q.ready = nil // let the backing array go
			}
			if q.msgs[m.env.ID] != m || m.inFlight {
				continue
			}
			m.inFlight = true
			d := &Delivery{ID: m.env.ID, Sender: m.env.Sender, m: m}
			done := make(map[int]bool, len(m.env.Done))
			for _, i := range m.env.Done {
				done[i] = true
			}
			for i, r := range m.env.Recipients {
				if !done[i] {
					d.Recipients = append(d.Recipients, r)
					d.idx = append(d.idx, i)
				}
			}
			more := len(q.ready) > 0
			body := m.body
			q.mu.Unlock()
			if more {
				q.notify()
			}
			if q.hooks.beforeOpen != nil {
				q.hooks.beforeOpen()
			}
			r, err := q.open(m, body)
			if err != nil {
				return nil, err
			}
			d.Body = r
			return d, nil
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(idle)
			defer timer.Stop()
		}
		select {
		case <-q.signal:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// open opens m's body at loc, which Next read under the lock. Compact may have written the message
// again since and its old segment may be gone: then the body is opened where it is now. A body
// that cannot be opened at all puts the message back on the deferred list, so that it is tried
// again rather than left out of every list until a restart.
func (q *Queue) open(m *msg, loc spool.Body) (*io.SectionReader, error) {
	for {
		r, err := q.spool.Open(loc)
		if err == nil {
			return r, nil
		}
		q.mu.Lock()
		if m.body != loc && q.msgs[m.env.ID] == m {
			loc = m.body // moved meanwhile: read it where it is now
			q.mu.Unlock()
			continue
		}
		m.inFlight = false
		head := false
		if q.msgs[m.env.ID] == m {
			m.env.NextTry = time.Now().Add(q.cfg.RetryBase)
			heap.Push(&q.deferred, m)
			head = q.deferred[0] == m
		}
		q.mu.Unlock()
		if head {
			q.poke()
		}
		return nil, fmt.Errorf("message %s: %w", m.env.ID, err)
	}
}

// Done records the outcome of a delivery: results[i] belongs to d.Recipients[i].
func (q *Queue) Done(d *Delivery, results []courier.Result) {
	now := time.Now()
	m := d.m
	q.mu.Lock()
	env := m.env // a private copy to work on outside the lock
	q.mu.Unlock()
	env.Done = append([]int(nil), env.Done...)
	p := props(&env)

	var events []track.Event
	var failed []dsn.Recipient
	var temp []int
	tempReply := ""
	for i, res := range results {
		rcpt, partner := d.Recipients[i], res.Partner
		switch {
		case res.OK:
			env.Done = append(env.Done, d.idx[i])
			q.counters[CountDelivered].Add(1)
			events = append(events, track.Event{Time: now, ID: track.EventDelivered, QueueID: d.ID, Recipient: rcpt, Partner: partner, Reply: res.Reply, Props: p})
		case !res.Temporary:
			env.Done = append(env.Done, d.idx[i])
			q.counters[CountFailed].Add(1)
			failed = append(failed, dsn.Recipient{Address: rcpt, Status: statusOf(res.Reply, "5.0.0"), Reply: res.Reply, RemoteMTA: partner})
			events = append(events, track.Event{Time: now, ID: track.EventFailed, QueueID: d.ID, Recipient: rcpt, Partner: partner, Reply: res.Reply, Props: p})
		default:
			temp = append(temp, i)
			tempReply = res.Reply
		}
	}
	env.Attempts++
	env.LastError = unique.Make(tempReply).Value()
	if len(temp) > 0 && now.Sub(env.Received) >= q.cfg.Lifetime {
		for _, i := range temp {
			rcpt := d.Recipients[i]
			env.Done = append(env.Done, d.idx[i])
			q.counters[CountExpired].Add(1)
			partner := results[i].Partner
			failed = append(failed, dsn.Recipient{Address: rcpt, Status: statusOf(results[i].Reply, "4.4.7"), Reply: results[i].Reply, RemoteMTA: partner, Expired: true})
			events = append(events, track.Event{Time: now, ID: track.EventExpired, QueueID: d.ID, Recipient: rcpt, Partner: partner, Reply: "expired after " + now.Sub(env.Received).Round(time.Second).String() + ": " + results[i].Reply, Props: p})
		}
		temp = nil
	}
	if len(temp) > 0 {
		q.mu.Lock()
		delay := nextDelay(env.Attempts, q.rnd.Float64(), q.cfg.RetryBase, q.cfg.RetryMax)
		q.mu.Unlock()
		env.NextTry = now.Add(delay)
		for _, i := range temp {
			q.counters[CountDeferred].Add(1)
			events = append(events, track.Event{Time: now, ID: track.EventDeferred, QueueID: d.ID, Recipient: d.Recipients[i], Partner: results[i].Partner, Reply: results[i].Reply, NextTry: env.NextTry, Props: p})
		}
	}

	if len(failed) > 0 && !env.Bounce && env.Sender != "" {
		if err := q.bounce(&env, d.Body, failed, now); err != nil {
			// Without a durable bounce the failure must not be forgotten: keep the recipients
			// pending and try again later.
			q.cfg.Logger.Error("queue: cannot queue a bounce; deferring", "id", d.ID, "err", err)
			env.Done = m.env.Done
			env.NextTry = now.Add(q.cfg.RetryBase)
			events = nil
			temp = append(temp, 0)
		} else {
			q.counters[CountBounced].Add(1)
			events = append(events, track.Event{Time: now, ID: track.EventBounced, QueueID: d.ID, Reply: failed[0].Reply, Props: p})
		}
	}

	finished := len(temp) == 0
	q.mu.Lock()
	m.env.State = env.State
	m.inFlight = false
	if finished {
		delete(q.msgs, d.ID)
	} else {
		heap.Push(&q.deferred, m)
	}
	head := q.deferred.Len() > 0 && q.deferred[0] == m
	q.mu.Unlock()

	if head {
		q.poke()
	}
	var seq uint64
	for _, ev := range events {
		seq = max(seq, q.record(ev))
	}
	q.settle(settlement{id: d.ID, remove: finished, state: env.State, seq: seq})
}

// Release gives a message back without an attempt (the worker is shutting down).
func (q *Queue) Release(d *Delivery) {
	q.mu.Lock()
	d.m.inFlight = false
	q.ready = append(q.ready, d.m)
	q.mu.Unlock()
	q.notify()
}
