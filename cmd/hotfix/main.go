// Command hotfix is relayfix's updater: it packs, signs, verifies and inspects hotfix packages,
// applies them to an install root while the relay carries mail, lists the installed file
// versions, and rolls components back.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
