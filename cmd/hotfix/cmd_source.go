package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/tableprint"
	"relayfix/packages/store"
	"relayfix/repository"
)

type sourceOptions struct {
	url   string
	trust string
}

func newCmdSource(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "source",
		Short: "Add, list and remove the repositories this root takes hotfixes from",
		Long: `source manages the repositories of the root, kept in ROOT/hotfix/sources. Each is trusted
through its root metadata, given out of band with --trust, as apt's keys are; from then on
the root follows the repository's key rotations and refuses anything the trusted keys did
not sign.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdSourceAdd(g), newCmdSourceList(g), newCmdSourceRemove(g))
	return cmd
}

func newCmdSourceAdd(g *globalOptions) *cobra.Command {
	o := &sourceOptions{}
	cmd := &cobra.Command{
		Use:     "add URL --trust FILE",
		Short:   "Add a repository, trusting its root metadata",
		Example: `  hotfix source add http://127.0.0.1:8080 --trust 1.root.json --root /var/lib/relayfix`,
		Args:    exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.url = args[0]
			return runSourceAdd(g, o)
		},
	}
	cmd.Flags().StringVar(&o.trust, "trust", "", "the repository's root metadata (root.json), obtained out of band (required)")
	return cmd
}

func runSourceAdd(g *globalOptions, o *sourceOptions) error {
	if o.trust == "" {
		return exitcode.Usagef("source add: --trust FILE is required: the repository's root metadata, obtained out of band")
	}
	trust, err := os.ReadFile(o.trust)
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	src, err := repository.Sources{Root: g.Root()}.Add(o.url, trust)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Added source %s.\n", src.URL)
	return nil
}

func newCmdSourceList(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the repositories",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSourceList(g)
		},
	}
}

func runSourceList(g *globalOptions) error {
	if err := store.CheckRoot(g.Root()); err != nil {
		return err
	}
	srcs, err := repository.Sources{Root: g.Root()}.List()
	if err != nil {
		return err
	}
	if g.json {
		if srcs == nil {
			srcs = []repository.Source{}
		}
		return writeJSON(g.stdout, srcs)
	}
	t := tableprint.New(g.stdout, "URL", "Directory")
	for _, s := range srcs {
		t.Append(s.URL, "hotfix/sources/"+s.Dir)
	}
	return t.Render()
}

func newCmdSourceRemove(g *globalOptions) *cobra.Command {
	o := &sourceOptions{}
	return &cobra.Command{
		Use:   "remove URL",
		Short: "Remove a repository and what was kept for it",
		Args:  exactArgs(1, "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.url = args[0]
			return runSourceRemove(g, o)
		},
	}
}

func runSourceRemove(g *globalOptions, o *sourceOptions) error {
	if err := store.CheckRoot(g.Root()); err != nil {
		return err
	}
	if err := (repository.Sources{Root: g.Root()}).Remove(o.url); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Removed source %s.\n", o.url)
	return nil
}
