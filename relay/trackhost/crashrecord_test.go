package trackhost

import (
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
	"relayfix/relay/crashlog"
)

// The pre-fix build's crash is recorded by its signature, with its build, count and times, in the
// status and durably in the crash records.
func TestPrefixBuildCrashSignatureRecorded(t *testing.T) {
	root := layout.Root(t.TempDir())
	db := &installedFiles{}
	db.install(t, root, bins.TrackPrefix)
	hs := start(t, root, db, fastConfig())
	waitFor(t, 10*time.Second, "healthy", healthy, hs.host)
	start := time.Now().UTC().Truncate(time.Second)
	hs.relay.carry("C", 2000, 16)
	st := waitFor(t, 30*time.Second, "a recorded crash signature", func(st control.ComponentStatus) bool {
		return st.Crashes > 0 && len(st.CrashSignatures) > 0
	}, hs.host)
	const want = "nil pointer dereference in relayfix/relay/trackplugin.recordsFor"
	cs := st.CrashSignatures[0]
	if len(st.CrashSignatures) != 1 || cs.Signature != want || cs.Build != stamp.TrackPrefixVersion || cs.Program != "msgtrack" ||
		cs.Count < 1 || cs.Count > st.Crashes || cs.First.Before(start) || cs.Last.Before(cs.First) {
		t.Fatalf("crash signatures %+v (crashes %d), want one %q from %s", st.CrashSignatures, st.Crashes, want, stamp.TrackPrefixVersion)
	}
	rs, err := crashlog.Load(crashlog.Path(root))
	if err != nil || len(rs) != 1 || rs[0].Signature != want || rs[0].Component != ComponentName || rs[0].Count < cs.Count {
		t.Fatalf("durable crash records %+v, %v", rs, err)
	}
}
