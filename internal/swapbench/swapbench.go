// Package swapbench measures what a mail relay's clients see while the relay's binary is
// swapped: the same bounded SMTP load (internal/smtpload) runs before, during and after a swap
// command (a Postfix stop and start, a Postfix reload, relayd's live upgrade through hotfix), and
// the result says how many sessions were refused, how many acknowledged messages were lost, the
// longest transaction around the swap against the steady-state longest, and the lowest
// throughput of any 250 ms bucket against the steady state. One package measures every relay, so
// that the figures compare.
package swapbench

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"time"

	"relayfix/internal/smtpload"
)

// Bucket is the width of one throughput sample.
const Bucket = 250 * time.Millisecond

// Options describe one measured swap.
type Options struct {
	Label    string
	Addr     string // the relay's SMTP address (loopback)
	Sink     *smtpload.Sink
	Swap     string        // shell command run at Before
	Before   time.Duration // steady load before the swap (default 4s)
	Duration time.Duration // whole load (default 12s)
	Rate     float64       // messages a second over 8 connections (default 200)
}

// Result is what one swap cost.
type Result struct {
	Label             string
	Sessions          int
	Refused           int // connections not greeted, transactions refused or broken
	Acked, Lost, Dups int
	SwapTook          time.Duration
	SteadyMax, MaxTx  time.Duration // longest transaction before the swap; from its start on
	Steady            float64       // median acknowledged msgs/s of the buckets before the swap
	MinRatio          float64       // lowest bucket from the swap on, over Steady
	Buckets           []float64     // acknowledged msgs/s per bucket from the load's start
	SwapAt            time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%-28s sessions %5d  refused %3d  acked %5d  lost %3d  dup %3d  swap %6v  steady max tx %6v  max tx %6v  steady %4.0f/s  lowest bucket %3.0f%%",
		r.Label, r.Sessions, r.Refused, r.Acked, r.Lost, r.Dups, r.SwapTook.Round(time.Millisecond),
		r.SteadyMax.Round(time.Millisecond), r.MaxTx.Round(time.Millisecond), r.Steady, 100*r.MinRatio)
}

// Measure runs the load, the swap at opts.Before, and waits up to a minute for every
// acknowledged message at the sink.
func Measure(ctx context.Context, opts Options) (Result, error) {
	if opts.Before <= 0 {
		opts.Before = 4 * time.Second
	}
	if opts.Duration <= 0 {
		opts.Duration = 12 * time.Second
	}
	if opts.Rate <= 0 {
		opts.Rate = 200
	}
	res := Result{Label: opts.Label}
	start := time.Now()
	type outcome struct {
		res *smtpload.LoadResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		lr, err := smtpload.Load(ctx, smtpload.LoadOptions{Addr: opts.Addr, N: 1 << 20, Concurrency: 8, Size: 4096,
			Rate: opts.Rate, Duration: opts.Duration, PerConn: 5})
		done <- outcome{lr, err}
	}()
	select {
	case <-time.After(opts.Before):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.SwapAt = time.Since(start)
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, "sh", "-c", opts.Swap).CombinedOutput(); err != nil {
		return res, fmt.Errorf("%s: %w\n%s", opts.Swap, err, out)
	}
	res.SwapTook = time.Since(t0)
	o := <-done
	if o.err != nil {
		return res, o.err
	}
	lr := o.res
	res.Sessions, res.Refused, res.Acked = lr.Sessions, lr.ConnErrors+lr.Rejected, lr.Acked
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	tally := opts.Sink.WaitFor(wctx, lr.Acks)
	cancel()
	res.Lost, res.Dups = tally.Lost, tally.Duplicates

	swapAt := start.Add(res.SwapAt)
	n := int(lr.Elapsed / Bucket)
	counts := make([]int, n)
	for i, at := range lr.AckTimes {
		if b := int(at.Sub(start) / Bucket); b < n {
			counts[b]++
		}
		began := at.Add(-lr.Latencies[i])
		if began.Before(swapAt) {
			res.SteadyMax = max(res.SteadyMax, lr.Latencies[i])
		} else {
			res.MaxTx = max(res.MaxTx, lr.Latencies[i])
		}
	}
	res.Buckets = make([]float64, n)
	var steady []float64
	first := int(res.SwapAt / Bucket)
	for i, c := range counts {
		res.Buckets[i] = float64(c) / Bucket.Seconds()
		if i >= 2 && i < first { // the first half second is the clients connecting
			steady = append(steady, res.Buckets[i])
		}
	}
	if len(steady) == 0 {
		return res, fmt.Errorf("%s: no steady state before the swap", opts.Label)
	}
	slices.Sort(steady)
	res.Steady = steady[len(steady)/2]
	res.MinRatio = 1e9
	for i := first; i < n-1; i++ { // the last bucket is cut short by the end of the load
		res.MinRatio = min(res.MinRatio, res.Buckets[i]/res.Steady)
	}
	return res, nil
}
