package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/layout"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	root   string // --root, else RELAYFIX_ROOT, else layout.DefaultRoot
	json   bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// Root returns the install root the command works on.
func (g *globalOptions) Root() layout.Root { return layout.FromEnv(g.root) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	cmd := newRootCmd(g)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	return exitcode.Of(cmd.ExecuteContext(ctx), "hotfix", stderr)
}

func newRootCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hotfix",
		Short: "Apply, list and roll back relayfix hotfixes",
		Long: `hotfix is the updater of a relayfix mail relay. It verifies signed hotfix packages,
applies them to an install root while relayd keeps carrying mail, lists the installed
file versions, and rolls components back.

The install root is --root, else $` + layout.EnvRoot + `, else ` + layout.DefaultRoot + `.

Exit status:
  0  success
  1  something failed or did not verify (the error says what, and for which file)
  2  the command line was wrong`,
		Example: `  hotfix apply dist/KB910618.hfx --root /var/lib/relayfix
  hotfix list --root /var/lib/relayfix
  hotfix rollback msgtrack --root /var/lib/relayfix`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unknown command %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if c.HasParent() {
			err = fmt.Errorf("%s: %w", c.Name(), err)
		}
		return &exitcode.UsageError{Err: err}
	})
	pf := cmd.PersistentFlags()
	pf.StringVar(&g.root, "root", "", "install root (default $"+layout.EnvRoot+", then "+layout.DefaultRoot+")")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON on stdout")

	cmd.AddCommand(
		newCmdKeygen(g),
		newCmdPack(g),
		newCmdVerify(g),
		newCmdInspect(g),
		newCmdApply(g),
		newCmdList(g),
		newCmdRollback(g),
		newCmdHistory(g),
		newCmdRecover(g),
		newCmdRepo(g),
		newCmdSource(g),
		newCmdCheck(g),
	)
	return cmd
}

// exactArgs is cobra.ExactArgs reporting a usage error that names what is missing.
func exactArgs(n int, what ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return exitcode.Usagef("%s needs %d argument(s) (%s), got %d", cmd.CommandPath(), n, strings.Join(what, ", "), len(args))
		}
		return nil
	}
}

// pubkeyFlag adds --pubkey, which names the keys a package's signature must verify with instead
// of the root's trusted keys.
func pubkeyFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "pubkey", "", "trusted minisign public key file(s), comma-separated (default ROOT/hotfix/trusted/*.pub)")
}
