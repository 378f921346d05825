package trackhost

import (
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/relay/control"
)

// The SP2 build's defect is a race, not a coin flip: when the next hop takes a while to accept a
// message (200 ms here, a distant next hop), the build reads each message back long
// before the relay removes it, and writes every record without crashing.
func TestRelaydPrefixBuildSurvivesLightLoad(t *testing.T) {
	root := relaytest.ShortRoot(t)
	install(t, root, bins.TrackPrefix, true)
	sink := newSink(t)
	sink.SetReply(func(int) error { time.Sleep(200 * time.Millisecond); return nil })
	p := startRelayd(t, root, sink.Addr())
	p.waitTracking(t, 20*time.Second, "healthy", healthy)
	const n = 15
	res := runLoad(t, smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 1, Rate: 4})
	delivered(t, sink, res, n)
	st := p.waitTracking(t, 20*time.Second, "every event written", func(st control.ComponentStatus) bool { return st.Pending == 0 })
	if st.Crashes != 0 {
		t.Fatalf("the SP2 build crashed under light load: %s", st.LastExit)
	}
	if lost := trackedInOrder(t, root, res.Acks); lost != 0 {
		t.Fatalf("%d of %d messages lack tracking records", lost, n)
	}
}
