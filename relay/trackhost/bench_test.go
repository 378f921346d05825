package trackhost

import (
	"testing"
	"time"

	"relayfix/internal/smtpload"
	"relayfix/relay/control"
)

// End-to-end throughput of relayd with tracking off, on (the fixed build) and crash-looping (the
// SP2 build meeting removed messages again and again). Each iteration relays 1,000 messages over
// 16 connections; msgs/s is over all iterations. Run with
//
//	go test -run '^$' -bench Relayd -benchtime 3x -count 5 ./relay/trackhost
//
// and compare medians: the machine is shared and single runs are noisy.
func BenchmarkRelaydTrackingOff(b *testing.B) { benchRelayd(b, "", "--tracking=false") }

func BenchmarkRelaydTrackingOn(b *testing.B) { benchRelayd(b, fixedBin) }

func BenchmarkRelaydTrackingCrashLoop(b *testing.B) { benchRelayd(b, prefixBin) }

func benchRelayd(b *testing.B, plugin string, extra ...string) {
	root := relaydRoot(b)
	if plugin != "" {
		install(b, root, plugin, true)
	}
	sink := newSink(b)
	p := startRelayd(b, root, sink.Addr(), extra...)
	if plugin != "" {
		deadline := time.Now().Add(20 * time.Second)
		for p.tracking(b).Health != control.HealthHealthy {
			if time.Now().After(deadline) {
				b.Fatalf("tracking not healthy: %+v", p.tracking(b))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const n = 1000
	seq := 0
	loadOnce := func() *smtpload.LoadResult {
		res, err := smtpload.Load(b.Context(), smtpload.LoadOptions{Addr: p.addr, N: n, Concurrency: 16, Size: 1024, FirstSeq: seq, Duration: 2 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		seq += n
		if res.Acked != n {
			b.Fatalf("acked %d of %d: %v", res.Acked, n, res.FirstError)
		}
		return res
	}
	loadOnce() // warm up: spool files, connections, the plugin's first batches
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		elapsed += loadOnce().Elapsed
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "msgs/s")
	if plugin != "" {
		st := p.tracking(b)
		b.ReportMetric(float64(st.Crashes), "crashes")
	}
}
