package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/relay"
	"relayfix/relay/installed"
	"relayfix/relay/metrics"
)

// The cost of metrics, part by part, in-process: what each message pays (the two latency
// observations) and what each scrape costs (the relay's status, the installed files, the Go and
// process collectors, the encoding). On a shared machine these are steadier than the end-to-end
// comparison of bench/metrics.sh, and they bound it: per message, observations plus one scrape's
// cost divided by the messages relayed between two scrapes.
func BenchmarkObservePerMessage(b *testing.B) {
	m := metrics.New(nil, nil)
	d := 3 * time.Millisecond
	for b.Loop() {
		m.ObserveTransaction(d)
		m.ObserveDelivery(d)
	}
}

func BenchmarkScrape(b *testing.B) {
	root := relaytest.ShortRoot(b)
	relaytest.Install(b, root, "6.5.7638", 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: "6.5.7638.1", Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: "6.5.7651.45", Package: "KB910618"})
	r, err := relay.New(relay.Config{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	h := metrics.New(r, installed.FromRoot(root)).Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip") // as Prometheus asks
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		io.Copy(io.Discard, w.Body)
	}
}
