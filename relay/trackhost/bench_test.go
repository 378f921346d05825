package trackhost

import (
	"errors"
	"io/fs"
	"testing"
	"time"

	"relayfix/internal/relaytest"
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

func BenchmarkRelaydTrackingOn(b *testing.B) { benchRelayd(b, bins.TrackFixed) }

// BenchmarkRelaydTrackingCrashLoop runs with relayd's default restart policy (100 ms doubling to
// 5 s); the tests' relayd otherwise restarts within 1 s.
func BenchmarkRelaydTrackingCrashLoop(b *testing.B) {
	benchRelayd(b, bins.TrackPrefix, "--track-restart-max", "5s")
}

func benchRelayd(b *testing.B, plugin string, extra ...string) {
	root := relaytest.ShortRoot(b)
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
		res, err := smtpload.Load(b.Context(), smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 16, Size: 1024, FirstSeq: seq, Duration: 2 * time.Minute})
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
	cpu0, self0 := p.cpu(b), procCPU(b, p.Pid(), false)
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		elapsed += loadOnce().Elapsed
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "msgs/s")
	// CPU per message is steadier than throughput on a shared machine: it counts relayd and its
	// plugin processes, living and reaped, whatever else the machine runs.
	b.ReportMetric(float64((p.cpu(b)-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/msg")
	b.ReportMetric(float64((procCPU(b, p.Pid(), false)-self0).Microseconds())/float64(n*b.N), "relayd-cpu-µs/msg")
	if plugin != "" {
		st := p.tracking(b)
		b.ReportMetric(float64(st.Crashes), "crashes")
	}
}

// cpu returns the CPU time used so far by relayd, by its reaped children (plugin processes that
// exited) and by the plugin process running now.
func (p *relaydProc) cpu(b *testing.B) time.Duration {
	total := procCPU(b, p.Pid(), true)
	if st := p.tracking(b); st.PID != 0 {
		total += procCPU(b, st.PID, false)
	}
	return total
}

// procCPU is relaytest.ProcCPU for a benchmark: a process that exited meanwhile counts 0 (the
// plugin's time is counted once relayd reaps it).
func procCPU(b *testing.B, pid int, children bool) time.Duration {
	d, err := relaytest.ProcCPU(pid, children)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		b.Fatal(err)
	}
	return d
}
