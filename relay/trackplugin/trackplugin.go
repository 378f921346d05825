// Package trackplugin is the plugin side of message tracking: the trackers that msgtrack serves to
// relayd over relay/trackrpc.
//
// There are two. Fixed is the KB910618 build's tracker: it speaks protocol 2, where each event
// carries its message's properties, and a protocol 1 that reads the properties back synchronously
// and copes with a message the relay has already removed; it acknowledges a batch only once its
// records are written. Prefix is the service pack 2 build's tracker, kept with its defect on
// purpose: it acknowledges events at once and reads each message's properties back from the relay
// later, on a worker, and when the relay has delivered and removed the message in the meantime it
// dereferences the missing message and the process dies. That is the race KB 910618 describes.
// It is kept so the whole episode — the crash under load, mail flowing on regardless, the hotfix
// applied live — can be shown and tested against the real thing, not a simulation of it.
package trackplugin

import (
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"relayfix/relay/track"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

// Protocols is the form of Fixed and Prefix: given the tracking log's writer, a logger and the
// build's file version, it returns the go-plugin VersionedPlugins the build serves.
type Protocols func(w *tracklog.Writer, log hclog.Logger, version string) map[int]plugin.PluginSet

// Fixed offers protocol 2 (properties travel with the event) and, for hosts that know only
// protocol 1, a synchronous protocol 1 that copes with a message that is already gone.
func Fixed(w *tracklog.Writer, log hclog.Logger, version string) map[int]plugin.PluginSet {
	t := newFixed(w, log, version)
	return trackrpc.Sets(nil, map[int]trackrpc.Tracker{1: t, 2: t}, 1, 2)
}

// Prefix offers protocol 1 only, as the service pack 2 build did (it predates protocol 2), and
// starts the worker that writes the records. The worker runs for the life of the process, which
// is the plugin's: under load it ends it, by the KB 910618 crash.
func Prefix(w *tracklog.Writer, log hclog.Logger, version string) map[int]plugin.PluginSet {
	t := newPrefix(w, log, version)
	go t.work()
	return trackrpc.Sets(nil, map[int]trackrpc.Tracker{1: t}, 1)
}

var (
	_ Protocols = Fixed
	_ Protocols = Prefix

	_ trackrpc.Tracker    = (*tracker)(nil)
	_ trackrpc.SourceUser = (*tracker)(nil)
	_ trackrpc.Tracker    = (*asyncTracker)(nil)
	_ trackrpc.SourceUser = (*asyncTracker)(nil)
)

// final reports whether ev is a message's last event, after which the relay removes it.
func final(ev track.Event) bool {
	switch ev.ID {
	case track.EventDelivered, track.EventFailed, track.EventBounced, track.EventExpired:
		return true
	}
	return false
}

// build is what the two trackers have in common: the log they write, the logger, the build's
// file version, and the relay's message source that a protocol 1 host attaches. mu guards src
// and each tracker's own state.
type build struct {
	w       *tracklog.Writer
	log     hclog.Logger
	version string

	mu  sync.Mutex
	src track.MessageSource
}

func (b *build) Version() (string, error) { return b.version, nil }
func (b *build) Health() error            { return nil }

func (b *build) SetSource(src track.MessageSource) {
	b.mu.Lock()
	b.src = src
	b.mu.Unlock()
}

func newFixed(w *tracklog.Writer, log hclog.Logger, version string) *tracker {
	return &tracker{build: build{w: w, log: log, version: version}, props: make(map[string]track.Properties)}
}

func newPrefix(w *tracklog.Writer, log hclog.Logger, version string) *asyncTracker {
	t := &asyncTracker{build: build{w: w, log: log, version: version}, props: make(map[string]*track.Properties)}
	t.cond = sync.NewCond(&t.mu)
	return t
}
