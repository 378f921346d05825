package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"relayfix/packages/store"
)

type rollbackOptions struct {
	target  string
	timeout time.Duration
}

func newCmdRollback(g *globalOptions) *cobra.Command {
	o := &rollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback COMPONENT|HOTFIX-ID|SERVICE-PACK-ID",
		Short: "Put back the build a component or hotfix replaced",
		Long: `rollback restores the previous build of a component (e.g. msgtrack), or of every file a
hotfix installed (e.g. KB910618, which is then no longer listed as installed), from the
backup taken when it was replaced. The backup's hash is checked first: a backup that does
not match what was recorded is refused and nothing changes. The services are restarted on
the restored build through the same journaled steps as apply. A second rollback goes further
back while earlier builds are remembered, or says why it cannot.

A service pack laid over another (e.g. SP3) goes back as a whole: every file it installed
returns to the build it replaced and product.json to the previous product level. It is
refused, naming them, while hotfixes applied after it are installed; roll those back first.
A file that a service pack installed is not rolled back on its own (that would leave the
product level claiming builds that are not there): rollback says to roll back the service
pack instead. A name that matches nothing is refused with the list of what can be rolled
back.

With --json it prints one object whatever happens: the result, with "changed" and, on
failure, "error".`,
		Example: `  hotfix rollback msgtrack --root /tmp/relay
  hotfix rollback KB910618 --root /tmp/relay --json
  hotfix rollback SP3 --root /tmp/relay`,
		Args: exactArgs(1, "COMPONENT|HOTFIX-ID|SERVICE-PACK-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = args[0]
			if err := checkHealthTimeout(o.timeout); err != nil {
				return err
			}
			return runRollback(cmd.Context(), g, o)
		},
	}
	cmd.Flags().DurationVar(&o.timeout, "health-timeout", 15*time.Second, "how long a restarted service has to report the restored build healthy (1s to 1h)")
	return cmd
}

func runRollback(ctx context.Context, g *globalOptions, o *rollbackOptions) error {
	res, err := newStore(g, o.timeout).Rollback(ctx, o.target)
	return reportChange(ctx, g, store.ActionRollback, res, err)
}
