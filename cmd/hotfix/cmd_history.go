package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/humantime"
	"relayfix/internal/tableprint"
	"relayfix/packages/store"
)

type historyOptions struct {
	utc bool
}

func newCmdHistory(g *globalOptions) *cobra.Command {
	o := &historyOptions{}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show every transaction applied to the root",
		Long: `history lists every transaction recorded in ROOT/hotfix/history.jsonl, oldest first:
its id, the package or component, the action (apply, rollback, recover), the result
(committed, rolled-back, failed), when it started, how long it took, and why it failed.
Start times are shown in local time unless --utc, each naming its zone; --json gives start
and end in RFC 3339, UTC.`,
		Example: `  hotfix history --root /tmp/relay
  hotfix history --root /tmp/relay --utc
  hotfix history --root /tmp/relay --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd.Context(), g, o, time.Local)
		},
	}
	cmd.Flags().BoolVar(&o.utc, "utc", false, "show times in UTC")
	return cmd
}

func runHistory(ctx context.Context, g *globalOptions, o *historyOptions, loc *time.Location) error {
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
	loc = humantime.In(o.utc, loc)
	t := tableprint.New(g.stdout, "Transaction", "Package", "Action", "Result", "Start", "Duration", "Error")
	for _, e := range h {
		t.Append(e.ID, e.Package, e.Action, e.Result, humantime.Stamp(e.Start, loc),
			e.End.Sub(e.Start).Round(time.Millisecond).String(), e.Error)
	}
	return t.Render()
}
