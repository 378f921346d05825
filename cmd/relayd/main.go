// Command relayd is the relayfix mail relay: it accepts mail over SMTP from its allowed
// networks, spools it durably, and delivers it to the next hop. `relayd ctl ...` talks to a
// running relay over its control socket.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
