package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/tableprint"
	"relayfix/repository"
)

func newCmdCheck(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Say which packages from the repositories apply here, and which fixes a crash seen here",
		Long: `check refreshes every source's signed metadata and prints, for this root, each package as
installed, applicable, not applicable (with the reason) or superseded (by what), and, for
each crash the relay recorded whose signature a package declares it fixes, one line naming
that package.

check is read-only: refreshing the sources' TUF metadata under ROOT/hotfix/sources is the
only write. It downloads no package and changes no installed file.

With --json it prints one object: "product" (what the root has), "packages" (each with id,
title, kind, source, state, and reason, superseded_by and fixes where they apply) and
"problems" (each crash a package fixes: component, program, build, signature, count, first,
last, summary, fixed_by and advice).`,
		Example: `  hotfix check --root /var/lib/relayfix
  hotfix check --root /var/lib/relayfix --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), g, time.Now())
		},
	}
}

func runCheck(ctx context.Context, g *globalOptions, now time.Time) error {
	if _, err := readRoot(g); err != nil {
		return err
	}
	rep, err := repository.Check(ctx, &repository.Client{Root: g.Root()})
	if err != nil {
		return err
	}
	if g.json {
		return writeJSON(g.stdout, rep)
	}
	if len(rep.Packages) == 0 {
		fmt.Fprintln(g.stderr, "hotfix: no repository offers any package: add one with 'hotfix source add URL --trust FILE'")
	}
	fmt.Fprintf(g.stdout, "This root: %s.\n", rep.Product)
	t := tableprint.New(g.stdout, "Package", "Kind", "State", "Detail", "Title")
	for _, v := range rep.Packages {
		detail := v.Reason
		if v.SupersededBy != "" {
			detail = "by " + v.SupersededBy
		}
		t.Append(v.ID, string(v.Kind), string(v.State), detail, v.Title)
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(g.stdout, p.Line(now))
	}
	return nil
}
