package main

import (
	"context"
	"fmt"

	"relayfix/internal/exitcode"
	"relayfix/packages/store"
)

// verifyRootResult is what verify --json prints for a root: the shape of verify PKG --json,
// with the root in place of the package.
type verifyRootResult struct {
	Root  string            `json:"root"`
	OK    bool              `json:"ok"`
	Files []store.FileCheck `json:"files"`
	Error string            `json:"error,omitempty"`
}

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
	var drift error
	if n > 0 {
		drift = fmt.Errorf("%d of %d installed files drifted from the installed-files database", n, len(checks))
	}
	if g.json {
		if checks == nil {
			checks = []store.FileCheck{}
		}
		rep := verifyRootResult{Root: string(g.Root()), OK: n == 0, Files: checks}
		if drift != nil {
			rep.Error = drift.Error()
		}
		if err := writeJSON(g.stdout, rep); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			fmt.Fprintln(g.stdout, c.String())
		}
	}
	if drift != nil {
		if !g.json {
			fmt.Fprintf(g.stderr, "hotfix: %v\n", drift)
		}
		return &exitcode.SilentError{Err: drift}
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "All %d installed files match the installed-files database.\n", len(checks))
	}
	return nil
}
