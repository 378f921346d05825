package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkLiveApply times a full live apply of KB910618 — hotfix started as a process, package
// verified and staged, backup, swap, the tracking component restarted by the running relay under
// mail load, the health check, commit — and reports the median, min and max over the runs. A
// rollback between runs (not timed) brings the root back to the service pack build.
//
//	go test ./packages/e2e -run '^$' -bench LiveApply -benchtime 10x
func BenchmarkLiveApply(b *testing.B) {
	root, _, r := liveSP2(b)
	l := startLoad(r.Addr, 100, 1000000)
	var runs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res := hotfix(b, root, nil, "apply", e.kb)
		d := time.Since(start)
		if res.code != 0 || !strings.Contains(res.stdout, "running 6.5.7651.45, healthy") {
			b.Fatalf("live apply: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		runs = append(runs, d)
		b.StopTimer()
		if res := hotfix(b, root, nil, "rollback", "KB910618"); res.code != 0 {
			b.Fatalf("rollback: %s", res.stderr)
		}
		b.StartTimer()
	}
	b.StopTimer()
	l.cancel()
	<-l.done
	slices.Sort(runs)
	b.ReportMetric(float64(runs[len(runs)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(runs[0].Milliseconds()), "min-ms")
	b.ReportMetric(float64(runs[len(runs)-1].Milliseconds()), "max-ms")
}
