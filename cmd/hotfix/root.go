package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/layout"
	"relayfix/internal/stamp"
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
	out := &printedWriter{Writer: stdout}
	g := &globalOptions{stdin: stdin, stdout: out, stderr: stderr}
	cmd := newRootCmd(g)
	cmd.SetArgs(args)
	cmd.SetIn(stdin)
	cmd.SetOut(out)
	cmd.SetErr(stderr)
	ran, err := cmd.ExecuteContextC(ctx)
	if err != nil && g.json && !out.printed {
		// One shape for every failure under --json: an object with "error", as apply and
		// rollback print along with their result.
		writeJSON(stdout, struct {
			Error string `json:"error"`
		}{err.Error()})
	}
	command := "hotfix"
	if ran != nil {
		command = ran.CommandPath()
	}
	return exitcode.OfCommand(err, "hotfix", command, stderr)
}

// printedWriter remembers whether a command printed anything, so that run knows whether a
// failed --json command already printed its object.
type printedWriter struct {
	io.Writer
	printed bool
}

func (p *printedWriter) Write(b []byte) (int, error) {
	p.printed = p.printed || len(b) > 0
	return p.Writer.Write(b)
}

func newRootCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hotfix",
		Short: "Apply, list and roll back relayfix hotfixes",
		Long: `hotfix is the updater of a relayfix mail relay. It verifies signed hotfix packages,
applies them to an install root while relayd keeps carrying mail, lists the installed
file versions, and rolls components back.

The install root is --root, else $` + layout.EnvRoot + `, else ` + layout.DefaultRoot + `.

With --json every command prints one JSON value on stdout; when it fails, that is an object
with an "error" field (apply and rollback add their result and "changed" to it). Empty
lists are printed as [].

Exit status:
  0  success
  1  something failed or did not verify, or the file system or environment is not as
     needed (the error says what, and for which file)
  2  the command line was wrong (the error points to that command's --help)`,
		Example: `  hotfix apply dist/KB910618.hfx --root /var/lib/relayfix
  hotfix list --root /var/lib/relayfix
  hotfix rollback msgtrack --root /var/lib/relayfix`,
		Version:       stamp.Version(),
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

// Bounds of --health-timeout. Below a second no restarted build can report itself healthy, so
// the transaction could only fail, and the undo, which restarts the old build, would fail for
// the same reason; above an hour something else is wrong.
const (
	minHealthTimeout = time.Second
	maxHealthTimeout = time.Hour
)

// checkHealthTimeout refuses a --health-timeout outside its bounds rather than replacing it.
func checkHealthTimeout(d time.Duration) error {
	if d < minHealthTimeout || d > maxHealthTimeout {
		return exitcode.Usagef("--health-timeout %s: must be from %s to %s", d, minHealthTimeout, maxHealthTimeout)
	}
	return nil
}

// pubkeyFlag adds --pubkey, which names the keys a package's signature must verify with instead
// of the root's trusted keys.
func pubkeyFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "pubkey", "", "trusted minisign public key file(s), comma-separated (default ROOT/hotfix/trusted/*.pub)")
}
