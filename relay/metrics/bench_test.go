package metrics_test

import (
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
)

// End-to-end throughput of relayd without and with --metrics-listen, scraped every second (a
// Prometheus server scrapes every 15 s by default: this is harsher). Tracking is off in both, so
// that the plugin's noise does not hide the metrics' cost. Each iteration relays 1,000 messages
// over 16 connections. bench/metrics.sh runs the two interleaved and compares medians:
//
//	bash bench/metrics.sh 9
func BenchmarkRelaydMetricsOff(b *testing.B) { benchRelayd(b, false) }

func BenchmarkRelaydMetricsOn(b *testing.B) { benchRelayd(b, true) }

func benchRelayd(b *testing.B, metrics bool) {
	root := relaytest.ShortRoot(b)
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	args := []string{"--tracking=false"}
	if metrics {
		args = append(args, "--metrics-listen", "127.0.0.1:0")
	}
	p := relaytest.StartRelayd(b, bins.Relayd, root, sink.Addr(), args...)
	if metrics {
		addr := p.HTTPAddr()
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if code, _, err := relaytest.Get(b.Context(), "http://"+addr+"/metrics"); err != nil || code != 200 {
						b.Errorf("scrape: %d %v", code, err)
						return
					}
				}
			}
		}()
		b.Cleanup(func() { close(stop); <-done })
	}
	const n = 1000
	seq := 0
	loadOnce := func() time.Duration {
		res, err := smtpload.Load(b.Context(), smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 16, Size: 1024, FirstSeq: seq, Duration: 2 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		seq += n
		if res.Acked != n {
			b.Fatalf("acked %d of %d: %v", res.Acked, n, res.FirstError)
		}
		return res.Elapsed
	}
	loadOnce() // warm up
	cpu0 := procCPU(b, p.Pid())
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		elapsed += loadOnce()
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "msgs/s")
	// CPU per message is steadier than throughput on a shared machine; it includes serving the
	// scrapes.
	b.ReportMetric(float64((procCPU(b, p.Pid())-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/msg")
}

func procCPU(b *testing.B, pid int) time.Duration {
	d, err := relaytest.ProcCPU(pid, false)
	if err != nil {
		b.Fatal(err)
	}
	return d
}
