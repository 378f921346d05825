package trackhost

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/rpc"
	"time"

	"relayfix/relay/trackjournal"
	"relayfix/relay/trackrpc"
)

const (
	// maxInFlight bounds the unacknowledged events: what a build that acknowledges late may have
	// to be sent again after a crash.
	maxInFlight = 4096
	// sendEvery spaces out batches that are not full: each batch costs the plugin a write and an
	// fsync of its log, and the relay and the plugin a round trip. The tracking log trails the
	// journal by that much more; nothing waits on it.
	sendEvery = 100 * time.Millisecond
)

// sender feeds the serving process from the journal, in order, and trims what it acknowledges.
// Whenever the process changes, it starts again after the last acknowledged event.
type sender struct {
	journal *trackjournal.Journal
	current func(context.Context) (*proc, error) // waits for the serving process
	log     *slog.Logger

	// run's own.
	r    *trackjournal.Reader
	gen  uint64 // of the process r feeds; 0: start again from the last acknowledged event
	sent uint64 // the last seq sent
}

func (s *sender) run(ctx context.Context) {
	defer func() {
		if s.r != nil {
			s.r.Close()
		}
	}()
	for ctx.Err() == nil {
		p, err := s.current(ctx)
		if err != nil {
			return
		}
		if s.r == nil || p.gen != s.gen {
			if s.r != nil {
				s.r.Close()
			}
			s.gen = p.gen
			s.sent = s.journal.Acked()
			s.r = s.journal.NewReader(s.sent + 1)
		}
		if s.sent > s.journal.Acked() && s.sent-s.journal.Acked() >= maxInFlight {
			s.call(p, (*trackrpc.RPCClient).Sync)
			continue
		}
		batch, err := s.r.NextLines(ctx, trackrpc.MaxBatch, trackrpc.MaxBatchBytes, 25*time.Millisecond)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("read tracking journal", "error", err)
				sleep(ctx, time.Second)
				s.gen = 0
			}
			continue
		}
		if batch.N == 0 {
			if s.sent > s.journal.Acked() {
				s.call(p, (*trackrpc.RPCClient).Sync)
			}
			continue
		}
		lines := trackrpc.Lines{Data: batch.Data}
		if s.call(p, func(t *trackrpc.RPCClient) (trackrpc.Ack, error) { return t.TrackLines(lines) }) {
			s.sent = batch.Last
			if batch.N < trackrpc.MaxBatch && len(batch.Data) < trackrpc.MaxBatchBytes {
				sleep(ctx, sendEvery)
			}
		}
	}
}

// call makes one call to p unless p was retired meanwhile, and takes the Ack. On failure it
// clears gen so that the sender starts again from the last acknowledged event.
func (s *sender) call(p *proc, fn func(*trackrpc.RPCClient) (trackrpc.Ack, error)) bool {
	p.callMu.Lock()
	if p.retired {
		p.callMu.Unlock()
		s.gen = 0
		return false
	}
	ack, err := fn(p.t)
	p.callMu.Unlock()
	if err != nil {
		s.gen = 0
		if isConnErr(err) || p.client.Exited() {
			p.markDead(err)
			return false
		}
		s.log.Warn("tracking plugin refused a batch; will retry", "error", err)
		time.Sleep(200 * time.Millisecond)
		return false
	}
	if err := s.journal.Trim(ack.Synced); err != nil {
		s.log.Error("trim tracking journal", "error", err)
	}
	return true
}

// isConnErr reports whether a call failed because the connection to the plugin is gone (the
// process died: net/rpc reports the call in flight as unexpected EOF, later ones as shut down),
// rather than because the plugin answered with an error.
func isConnErr(err error) bool {
	var se rpc.ServerError
	if errors.As(err, &se) {
		return false
	}
	return errors.Is(err, rpc.ErrShutdown) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
