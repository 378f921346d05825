package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"relayfix/internal/yield"
	"relayfix/packages/store"
)

func newCmdRecover(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "Finish or undo an interrupted transaction",
		Long: `recover looks at the journal (ROOT/hotfix/journal.json) and deals with a transaction
that was interrupted by a crash, a kill or a power loss, then says what it did:

  stopped before "healthy"  (verified, staged, backed-up, swapping, swapped, restarting)
      undone: every file it may have touched is restored from its verified backup (or
      removed if it was new) and the services are restarted on the previous build;
  stopped at "healthy" or later
      finished: the new build was seen healthy, so the database, product and history are
      written and the transaction is committed;
  stopped while rolling back
      the rollback is completed.

Every command that changes the root does the same first; recover does it explicitly.`,
		Example: `  hotfix recover --root /tmp/relay
  hotfix recover --root /tmp/relay --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecover(cmd.Context(), g)
		},
	}
}

func runRecover(ctx context.Context, g *globalOptions) error {
	// Hashing and staging run on what the relay leaves over; refused, they run as they are.
	_ = yield.Lower()
	rep, err := newStore(g, 0).Recover(ctx)
	if err != nil {
		return err // under --json, run prints it as the one error object
	}
	if g.json {
		writeJSON(g.stdout, rep)
		return nil
	}
	if rep.Outcome == store.RecoveredNothing {
		fmt.Fprintln(g.stdout, "Nothing to recover: no transaction was interrupted.")
		return nil
	}
	fmt.Fprintf(g.stdout, "Recovered transaction %s (%s of %s, interrupted at %q): %s.\n",
		rep.TxID, rep.Action, rep.Package, rep.State, rep.Detail)
	return nil
}
