package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay"
)

// rootOptions are the options every relayd command shares.
type rootOptions struct {
	root string // --root, else RELAYFIX_ROOT, else layout.DefaultRoot
	json bool   // --json of ctl and track: a failure is printed as {"error": ...} on stdout too
	// jsonErr is set once a command printed its failure as JSON itself.
	jsonErr bool
	stdout  io.Writer
	stderr  io.Writer

	// wiring is run on the relay after New and before Run: this is where optional parts (the
	// tracking plugin host) attach their recorder and components.
	wiring []func(ctx context.Context, o *rootOptions, r *relay.Relay) (cleanup func(), err error)
	// checks validate the optional parts' settings once the command line and ROOT/relayd.json
	// are read, before anything is opened.
	checks []func(flags *pflag.FlagSet) error
}

// Root returns the install root.
func (o *rootOptions) Root() layout.Root { return layout.FromEnv(o.root) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := &rootOptions{stdout: stdout, stderr: stderr}
	cmd := newRootCmd(o)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	c, err := cmd.ExecuteContextC(ctx)
	if err != nil && o.json && !o.jsonErr {
		printJSONError(stdout, err)
	}
	return exitcode.OfCommand(err, "relayd", c.CommandPath(), stderr)
}

func newRootCmd(o *rootOptions) *cobra.Command {
	d := &daemonOptions{root: o}
	cmd := &cobra.Command{
		Use:   "relayd",
		Short: "The relayfix mail relay",
		Long: `relayd accepts mail over SMTP from its allowed client networks only (never an open
relay), writes each message durably to ROOT/spool before answering 250, and delivers
it to the next hop with concurrent workers, retrying temporary failures with backoff
and bouncing permanent ones to the sender.

Without a subcommand relayd runs the relay in the foreground until SIGINT or SIGTERM,
then drains: it stops accepting, answers idle sessions 421 4.3.2, lets open
transactions finish and leaves the spool consistent. SIGHUP is logged and ignored.

A transfer that breaks off (read timeout, --transaction-timeout, size or line limit,
disconnect) gets at most one reply, its connection is closed and nothing of it is
stored. --read-timeout bounds each read, not a whole transfer.

The install root is --root, else $` + layout.EnvRoot + `, else ` + layout.DefaultRoot + `.
Settings are read from ROOT/relayd.json, a JSON object whose keys are the long flag
names below (durations as strings such as "90s", allow as a list of CIDRs); flags
given on the command line override the file. Example:

  {"listen": "0.0.0.0:25", "next-hop": "10.0.0.2:25", "allow": ["10.0.0.0/8"],
   "workers": 32, "lifetime": "120h"}

The control socket is ROOT/run/relayd.sock (owner only); see 'relayd ctl'.

Exit status:
  0  success
  1  failure
  2  the command line was wrong`,
		Example: `  relayd --root /var/lib/relayfix --listen 127.0.0.1:2525 --next-hop 127.0.0.1:2526
  relayd ctl status --root /var/lib/relayfix`,
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
			return runDaemon(cmd.Context(), cmd, d)
		},
	}
	cmd.SetVersionTemplate("relayd {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if c.HasParent() {
			err = fmt.Errorf("%s: %w", c.Name(), err)
		}
		return &exitcode.UsageError{Err: err}
	})
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.root, "root", "", "install root (default $"+layout.EnvRoot+", then "+layout.DefaultRoot+")")
	d.addFlags(cmd)
	cmd.AddCommand(newCmdCtl(o))
	addTracking(cmd, o)
	return cmd
}
