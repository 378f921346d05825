package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/tableprint"
	"relayfix/packages/store"
)

func newCmdHistory(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "history",
		Short: "Show every transaction applied to the root",
		Long: `history lists every transaction recorded in ROOT/hotfix/history.jsonl, oldest first:
its id, the package or component, the action (apply, rollback, recover), the result
(committed, rolled-back, failed), when it started and ended (UTC), and why it failed.`,
		Example: `  hotfix history --root /tmp/relay
  hotfix history --root /tmp/relay --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd.Context(), g)
		},
	}
}

func runHistory(ctx context.Context, g *globalOptions) error {
	if _, err := readRoot(g); err != nil {
		return err
	}
	h, err := store.LoadHistory(g.Root())
	if err != nil {
		return err
	}
	if g.json {
		if h == nil {
			h = []store.HistoryEntry{}
		}
		return writeJSON(g.stdout, h)
	}
	t := tableprint.New(g.stdout, "Transaction", "Package", "Action", "Result", "Start (UTC)", "Duration", "Error")
	for _, e := range h {
		t.Append(e.ID, e.Package, e.Action, e.Result, e.Start.UTC().Format(time.DateTime),
			e.End.Sub(e.Start).Round(time.Millisecond).String(), e.Error)
	}
	return t.Render()
}
