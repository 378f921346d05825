// Command msgtrack is relayd's message-tracking plugin: relayd starts it through hashicorp/go-plugin,
// hands it the events of each message's life, and msgtrack writes them to the tracking logs under
// ROOT/log/tracking (see relay/tracklog for the format).
//
// Two builds come from this source, and each serves one of relay/trackplugin's trackers. The
// default build (the KB910618 fix, file version 6.5.7651.45) serves trackplugin.Fixed: protocol 2,
// where each event carries its message's properties, and a safe protocol 1. The build tagged
// msgtrack_prefix (the service pack 2 build, 6.5.7638.1) serves trackplugin.Prefix: protocol 1
// only, with the defect KB 910618 describes: it acknowledges an event at once and reads the
// message's properties back from the relay later, on a worker; under load the relay has by then
// delivered and removed the message, and the build dereferences the missing message and crashes.
//
// msgtrack is not meant to be run by hand. It logs to stderr (stdout carries the go-plugin
// handshake) and finds the install root in RELAYFIX_ROOT, which relayd sets.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		// Asked by a person or a script, not by the relay: no plugin handshake.
		fmt.Println("msgtrack version " + stamp.Version())
		return
	}
	// The plugin's heap is a few batches; collecting it less often saves CPU that the relay
	// beside it can use.
	debug.SetGCPercent(400)
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "msgtrack",
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.Info,
	})
	root := layout.FromEnv("")
	w := tracklog.NewWriter(root.TrackingLog(), "relayfix msgtrack "+stamp.Version(), nil)
	defer w.Close()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  trackrpc.Handshake,
		VersionedPlugins: protocols()(w, logger, stamp.Version()),
		Logger:           logger,
	})
}
