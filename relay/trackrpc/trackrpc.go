// Package trackrpc is the plugin contract between relayd and msgtrack over hashicorp/go-plugin in
// net/rpc mode, imported by both sides so they cannot drift apart.
//
// Two protocol versions are negotiated with go-plugin's VersionedPlugins; the highest version both
// sides offer wins:
//
//   - Protocol 1 sends the message handle only (seq, time, event id, queue id, recipient, partner,
//     reply): the plugin reads the message's properties back from the relay through a
//     MessageSource that the host serves over go-plugin's MuxBroker (Attach). This is the
//     pre-fix design: by the time the plugin asks, the relay may have delivered the message and
//     removed it, and the answer is "no such message".
//   - Protocol 2 sends each event with its immutable Props snapshot, so the plugin never calls
//     back. A batch travels as the host journal's own lines (Lines, see lines.go), which the
//     host neither decodes nor re-encodes.
//
// In both protocols events go in batches (at most MaxBatch events, and about MaxBatchBytes of
// lines), in seq order. Every reply carries an
// Ack: the highest seq the plugin has written and fsynced. The host keeps every event in its own
// durable journal until it is acknowledged, and replays the rest to the next process after a
// crash, so the plugin may see an event twice. Version reports the build's four-part file version
// (the protocol version says nothing about the build); Health is a cheap liveness check.
package trackrpc

import (
	"fmt"
	"net/rpc"

	"github.com/hashicorp/go-plugin"

	"relayfix/relay/track"
)

// Handshake is the go-plugin handshake. The cookie only keeps msgtrack from being started by
// hand or by another go-plugin host; it is not a security measure (the checksum is).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "RELAYFIX_MSGTRACK_PLUGIN",
	MagicCookieValue: "7b1e4c0f-relayfix-msgtrack-910618",
}

// PluginName is the name msgtrack is dispensed under.
const PluginName = "tracking"

// MaxBatch is the largest number of events the host sends in one Track call. Batches are large so
// that a backlog costs few round trips and the plugin few fsyncs.
const MaxBatch = 4096

// MaxBatchBytes is about the most line data the host sends in one call (a batch stops at the
// first line past it).
const MaxBatchBytes = 1 << 20

// Ack acknowledges events: Synced is the highest seq the plugin has durably written (0: none
// since it started). Acks only grow.
type Ack struct {
	Synced uint64
}

// Tracker is what a msgtrack build implements, and what the host calls.
type Tracker interface {
	// Version returns the build's four-part file version.
	Version() (string, error)
	// Health returns nil while the plugin can write records.
	Health() error
	// Track hands over a batch of events in seq order. It may return before the records are
	// written; the Ack says how far writing has got.
	Track(events []track.Event) (Ack, error)
	// Sync waits (briefly) for the events handed over so far to be written and returns the Ack.
	Sync() (Ack, error)
}

// SourceUser is implemented by a protocol 1 Tracker: the host attaches the relay's message source
// before the first Track.
type SourceUser interface {
	SetSource(src track.MessageSource)
}

// Plugin is the go-plugin glue for one protocol version. The plugin side sets Impl; the host side
// sets Source (protocol 1 only).
type Plugin struct {
	Protocol int
	Impl     Tracker
	Source   track.MessageSource
}

var _ plugin.Plugin = (*Plugin)(nil)

// Server returns the net/rpc server for Impl.
func (p *Plugin) Server(b *plugin.MuxBroker) (any, error) {
	return &RPCServer{impl: p.Impl, broker: b}, nil
}

// Client returns the host's Tracker: an RPC client that, for protocol 1, first serves the host's
// message source over the broker and tells the plugin where to find it.
func (p *Plugin) Client(b *plugin.MuxBroker, c *rpc.Client) (any, error) {
	rc := &RPCClient{client: c, protocol: p.Protocol}
	if p.Protocol == 1 {
		if p.Source == nil {
			return nil, fmt.Errorf("tracking protocol 1 needs a message source")
		}
		id := b.NextId()
		go b.AcceptAndServe(id, &sourceServer{src: p.Source})
		var none struct{}
		if err := c.Call("Plugin.Attach", id, &none); err != nil {
			return nil, fmt.Errorf("attach message source: %w", err)
		}
	}
	return rc, nil
}

// Sets returns the VersionedPlugins map offering the given protocols; impls[v] is the plugin's
// implementation for protocol v (nil on the host side).
func Sets(src track.MessageSource, impls map[int]Tracker, protocols ...int) map[int]plugin.PluginSet {
	out := make(map[int]plugin.PluginSet, len(protocols))
	for _, v := range protocols {
		out[v] = plugin.PluginSet{PluginName: &Plugin{Protocol: v, Impl: impls[v], Source: src}}
	}
	return out
}
