package queue

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

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
		if q.hooks.afterSnapshot != nil {
			q.hooks.afterSnapshot()
		}
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
		// A delivery may have finished while the copy was written: its record may have come
		// first, so it is written again after the copy, and after any outcome of the message
		// still waiting for its tracking events.
		q.settle(settlement{id: id, remove: !live, state: st})
	}
	return moved
}

// Run moves deferred messages whose time has come to the ready list, compacts the spool now and
// then, and writes the outcomes of deliveries once their tracking events are on disk, until ctx is
// done. Then it waits a little for the outcomes still waiting (stop the workers first).
func (q *Queue) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { q.settleLoop(ctx) })
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
