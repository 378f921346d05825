package queue

import (
	"context"
	"time"

	"relayfix/relay/spool"
	"relayfix/relay/track"
)

const (
	// settleHold is the longest an outcome waits for its tracking events. A journal that cannot
	// sync for that long must not keep delivered mail in the spool, filling the disk: the
	// outcome is written anyway, and a cut can then lose the tracking record (never the mail).
	settleHold = 30 * time.Second
	// settleDrain is how long Run waits at the end for the outcomes still waiting. What is left
	// after it is delivered again at the next start.
	settleDrain = 2 * time.Second
)

// settlement is the spool write of a delivery attempt's outcome: the message's removal, or its
// new state. seq is the last tracking event the attempt recorded, 0 for none to wait for.
type settlement struct {
	id     string
	remove bool
	state  spool.State
	seq    uint64
	since  time.Time
}

// settle writes s to the spool once the tracking events up to s.seq are on disk, and after every
// settlement handed in before it (a message's outcomes must reach the spool in order). It never
// waits for the disk: with nothing to wait for it writes at once, otherwise Run's settle loop does.
func (q *Queue) settle(s settlement) {
	if s.seq == 0 {
		// Nothing to wait for, and nothing ahead of it: write it now. settleMu keeps the settle
		// loop from writing older settlements after it meanwhile.
		q.settleMu.Lock()
		q.mu.Lock()
		if len(q.settling) == 0 {
			q.mu.Unlock()
			q.write(s)
			q.settleMu.Unlock()
			return
		}
		q.mu.Unlock()
		q.settleMu.Unlock()
	}
	s.since = time.Now()
	q.mu.Lock()
	q.settling = append(q.settling, s) // behind everything handed in before: order is kept
	first := len(q.settling) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.settled <- struct{}{}:
		default:
		}
	}
}

func (q *Queue) write(s settlement) {
	var err error
	if s.remove {
		err = q.spool.Remove(s.id)
	} else {
		err = q.spool.Update(s.id, s.state)
	}
	if err != nil {
		q.cfg.Logger.Warn("queue: cannot record delivery state", "id", s.id, "err", err)
	}
}

// AwaitingTracking returns how many delivery outcomes wait for their tracking events to be on
// disk before they go to the spool.
func (q *Queue) AwaitingTracking() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.settling)
}

// settleDue writes the settlements at the head of the list whose events are on disk (or that
// waited settleHold), and returns how many are left, a channel closed when the journal may have
// synced more, and when the head's hold ends.
func (q *Queue) settleDue(now time.Time) (left int, changed <-chan struct{}, hold time.Duration) {
	var synced uint64
	j, journaled := (*q.rec.Load()).(track.Journaled)
	if journaled {
		synced, changed = j.Synced()
	}
	q.settleMu.Lock()
	defer q.settleMu.Unlock()
	q.mu.Lock()
	n, late := 0, 0
	for ; n < len(q.settling); n++ {
		s := q.settling[n]
		if journaled && s.seq > synced {
			if now.Sub(s.since) < settleHold {
				break
			}
			late++
		}
	}
	due := q.settling[:n]
	switch {
	case n == len(q.settling):
		q.settling = nil
	case n > 0:
		q.settling = append([]settlement(nil), q.settling[n:]...)
	}
	if len(q.settling) > 0 {
		hold = settleHold - now.Sub(q.settling[0].since)
	}
	left = len(q.settling)
	q.mu.Unlock()
	if late > 0 {
		q.cfg.Logger.Warn("queue: tracking journal not synced in time; delivery outcomes written without their tracking events on disk",
			"outcomes", late, "waited", settleHold)
	}
	for _, s := range due {
		q.write(s)
	}
	return left, changed, hold
}

// settleLoop writes settlements as their tracking events reach the disk until ctx is done, then
// for up to settleDrain more.
func (q *Queue) settleLoop(ctx context.Context) {
	var drain <-chan time.Time
	for {
		left, changed, hold := q.settleDue(time.Now())
		var held <-chan time.Time
		var t *time.Timer
		switch {
		case left == 0 && drain != nil:
			return
		case left == 0:
			changed = nil // nothing waits for the journal
		default:
			t = time.NewTimer(hold)
			held = t.C
		}
		select {
		case <-ctx.Done():
			if drain == nil {
				dt := time.NewTimer(settleDrain)
				defer dt.Stop()
				drain = dt.C
			}
			ctx = context.Background() // wait on the journal alone from here on
		case <-drain:
			q.cfg.Logger.Warn("queue: delivery outcomes left unwritten at shutdown; those messages will be delivered again", "outcomes", left)
			return
		case <-q.settled:
		case <-changed:
		case <-held:
		}
		if t != nil {
			t.Stop()
		}
	}
}
