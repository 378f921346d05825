// Package queue is relayd's queue manager: the in-memory index of the messages in the spool,
// the order in which they are handed to delivery workers, retries with backoff, expiry, bounces,
// and the tracking events of every step.
//
// The index holds envelopes only, never bodies: a delivery worker reads the body from the spool
// when it sends the message. Every change of a message's state goes to the spool before the
// message leaves the queue, so the queue can be rebuilt from the spool after a crash.
package queue

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"relayfix/relay/control"
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
}

// NewID returns a queue id that no message in this spool had before: microseconds since the
// epoch, bumped past the last id handed out, in base 36.
func (q *Queue) NewID() string {
	now := uint64(time.Now().UnixMicro())
	q.mu.Lock()
	if now <= q.lastID {
		now = q.lastID + 1
	}
	q.lastID = now
	q.mu.Unlock()
	return strings.ToUpper(strconv.FormatUint(now, 36))
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
		msgs:     make(map[string]*msg, len(recovered)),
		rnd:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)),
	}
	q.SetRecorder(cfg.Recorder)
	for _, n := range []string{CountReceived, CountDelivered, CountDeferred, CountBounced, CountFailed, CountExpired} {
		q.counters[n] = new(atomic.Uint64)
	}
	now := time.Now()
	for _, r := range recovered {
		m := &msg{env: r.Envelope, body: r.Body, heapIdx: -1}
		m.env.Intern()
		if v, err := strconv.ParseUint(strings.ToLower(m.env.ID), 36, 64); err == nil && v > q.lastID {
			q.lastID = v
		}
		q.msgs[m.env.ID] = m
		if m.env.NextTry.After(now) {
			heap.Push(&q.deferred, m)
		} else {
			q.ready = append(q.ready, m)
		}
	}
	if len(q.ready) > 0 {
		q.notify()
	}
	return q
}

// SetRecorder replaces the tracking recorder (nil: track.Discard).
func (q *Queue) SetRecorder(r track.Recorder) {
	if r == nil {
		r = track.Discard
	}
	q.rec.Store(&r)
}

func (q *Queue) record(ev track.Event) {
	ev.Time = ev.Time.UTC()
	(*q.rec.Load()).Record(ev)
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
			r, err := q.spool.Open(body)
			if err != nil {
				q.mu.Lock()
				m.inFlight = false
				q.mu.Unlock()
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

// Result is the outcome of one recipient of a delivery.
type Result struct {
	OK        bool
	Temporary bool   // for a failure: try again later
	Reply     string // the next hop's reply, or why the attempt failed
	Partner   string // the host that answered, when it is not the partner given to Done
}

// Done records the outcome of a delivery: results[i] belongs to d.Recipients[i]. partner is the
// next hop that was tried.
func (q *Queue) Done(d *Delivery, results []Result, partner string) {
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
		rcpt := d.Recipients[i]
		partner := partner
		if res.Partner != "" {
			partner = res.Partner
		}
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
			events = append(events, track.Event{Time: now, ID: track.EventDeferred, QueueID: d.ID, Recipient: d.Recipients[i], Partner: partner, Reply: results[i].Reply, NextTry: env.NextTry, Props: p})
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

	var err error
	if finished {
		err = q.spool.Remove(d.ID)
	} else {
		err = q.spool.Update(d.ID, env.State)
	}
	if err != nil {
		q.cfg.Logger.Warn("queue: cannot record delivery state", "id", d.ID, "err", err)
	}
	if head {
		q.poke()
	}
	for _, ev := range events {
		q.record(ev)
	}
}

// Release gives a message back without an attempt (the worker is shutting down).
func (q *Queue) Release(d *Delivery) {
	q.mu.Lock()
	d.m.inFlight = false
	q.ready = append(q.ready, d.m)
	q.mu.Unlock()
	q.notify()
}

// bounce queues a delivery status notification to env's sender, durably.
func (q *Queue) bounce(env *spool.Envelope, body *io.SectionReader, failed []dsn.Recipient, now time.Time) error {
	id := q.NewID()
	msg, err := dsn.Build(dsn.Report{
		ReportingMTA: q.cfg.Hostname,
		QueueID:      env.ID,
		Sender:       env.Sender,
		Arrival:      env.Received,
		Date:         now,
		MessageID:    "<" + id + "@" + q.cfg.Hostname + ">",
		Recipients:   failed,
		Original:     io.NewSectionReader(body, 0, body.Size()),
	})
	if err != nil {
		return err
	}
	benv := &spool.Envelope{
		ID:         id,
		Sender:     "",
		Recipients: []string{env.Sender},
		Received:   now,
		Size:       int64(len(msg)),
		MessageID:  "<" + id + "@" + q.cfg.Hostname + ">",
		Subject:    "Undelivered Mail Returned to Sender",
		Server:     q.cfg.Hostname,
		Bounce:     true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return q.Accept(ctx, benv, nil, msg)
}

// statusOf extracts an enhanced status code (x.y.z) from an SMTP reply, or returns def.
func statusOf(reply, def string) string {
	for _, f := range strings.Fields(reply) {
		if len(f) >= 5 && (f[0] == '2' || f[0] == '4' || f[0] == '5') && f[1] == '.' && strings.Count(f, ".") == 2 {
			return f
		}
	}
	return def
}

// compactEvery is how often Run looks for long-deferred messages that pin old spool segments.
const compactEvery = time.Minute

// compactMax is the most live messages a segment may hold to be compacted; a segment with more
// is not mostly garbage.
const compactMax = 256

// Compact writes again the deferred messages that keep the spool's oldest segment alive, so
// that the segment and those after it can go. It returns how many it moved.
func (q *Queue) Compact(ctx context.Context) int {
	moved := 0
	for _, id := range q.spool.Pinned(compactMax) {
		q.mu.Lock()
		m := q.msgs[id]
		if m == nil || m.inFlight {
			q.mu.Unlock()
			continue
		}
		env := m.env
		env.Done = append([]int(nil), env.Done...)
		loc := m.body
		q.mu.Unlock()
		r, err := q.spool.Open(loc)
		if err != nil {
			continue
		}
		body := make([]byte, r.Size())
		if _, err := r.ReadAt(body, 0); err != nil {
			q.cfg.Logger.Warn("queue: cannot read a message to compact", "id", id, "err", err)
			continue
		}
		nloc, err := q.spool.Put(ctx, &env, nil, body)
		if err != nil {
			q.cfg.Logger.Warn("queue: cannot compact a message", "id", id, "err", err)
			return moved
		}
		moved++
		q.mu.Lock()
		live := q.msgs[id] == m
		if live {
			m.body = nloc
		}
		st := m.env.State
		q.mu.Unlock()
		// A delivery may have finished while the copy was written: its record came first, so
		// it is written again after the copy.
		if live {
			q.spool.Update(id, st)
		} else {
			q.spool.Remove(id)
		}
	}
	return moved
}

// Run moves deferred messages whose time has come to the ready list, and compacts the spool
// now and then, until ctx is done.
func (q *Queue) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	compact := time.NewTicker(compactEvery)
	defer compact.Stop()
	for {
		now := time.Now()
		q.mu.Lock()
		moved := 0
		for q.deferred.Len() > 0 && !q.deferred[0].env.NextTry.After(now) {
			m := heap.Pop(&q.deferred).(*msg)
			q.ready = append(q.ready, m)
			moved++
		}
		wait := time.Hour
		if q.deferred.Len() > 0 {
			wait = q.deferred[0].env.NextTry.Sub(now)
		}
		q.mu.Unlock()
		if moved > 0 {
			q.notify()
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		case <-compact.C:
			if n := q.Compact(ctx); n > 0 {
				q.cfg.Logger.Info("spool compacted", "moved", n)
			}
		}
	}
}

// Flush makes every deferred message ready now and returns how many there were.
func (q *Queue) Flush() int {
	q.mu.Lock()
	n := q.deferred.Len()
	for q.deferred.Len() > 0 {
		m := heap.Pop(&q.deferred).(*msg)
		m.env.NextTry = time.Time{}
		q.ready = append(q.ready, m)
	}
	q.mu.Unlock()
	if n > 0 {
		q.notify()
	}
	return n
}

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

// List returns up to limit queued messages (0: all), oldest first.
func (q *Queue) List(limit int) []control.QueueEntry {
	q.mu.Lock()
	out := make([]control.QueueEntry, 0, len(q.msgs))
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
		out = append(out, control.QueueEntry{
			QueueID: e.ID, Sender: e.Sender, Recipients: rcpts, Size: e.Size, Received: e.Received,
			Attempts: e.Attempts, NextTry: e.NextTry, LastError: e.LastError,
		})
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Received.Equal(out[j].Received) {
			return out[i].Received.Before(out[j].Received)
		}
		return out[i].QueueID < out[j].QueueID
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

// msgHeap orders deferred messages by next try.
type msgHeap []*msg

func (h msgHeap) Len() int           { return len(h) }
func (h msgHeap) Less(i, j int) bool { return h[i].env.NextTry.Before(h[j].env.NextTry) }
func (h msgHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *msgHeap) Push(x any) {
	m := x.(*msg)
	m.heapIdx = len(*h)
	*h = append(*h, m)
}
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	m.heapIdx = -1
	*h = old[:len(old)-1]
	return m
}
