package main

import (
	"context"
	"fmt"

	"relayfix/internal/exitcode"
	"relayfix/packages/store"
)

// runVerifyRoot checks every installed file of the root against the installed-files database
// (size, SHA-256, file version, platform, timestamp), as rpm -V does, and fails if any drifted.
func runVerifyRoot(ctx context.Context, g *globalOptions) error {
	pending, err := readRoot(g)
	if err != nil {
		return err
	}
	if pending != nil {
		// Files may be half swapped: comparing them with either database would mislead.
		return fmt.Errorf("cannot verify the root: %w", pending)
	}
	checks, err := newStore(g, 0).VerifyRoot(ctx)
	if err != nil {
		return err
	}
	n := store.Drifted(checks)
	if g.json {
		if checks == nil {
			checks = []store.FileCheck{}
		}
		writeJSON(g.stdout, checks)
	} else {
		for _, c := range checks {
			fmt.Fprintln(g.stdout, c.String())
		}
	}
	if n > 0 {
		err := fmt.Errorf("%d of %d installed files drifted from the installed-files database", n, len(checks))
		if !g.json {
			fmt.Fprintf(g.stderr, "hotfix: %v\n", err)
		}
		return &exitcode.SilentError{Err: err}
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "All %d installed files match the installed-files database.\n", len(checks))
	}
	return nil
}
