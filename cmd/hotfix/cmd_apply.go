package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"relayfix/packages/archive"
	"relayfix/packages/store"
	"relayfix/relay/control"
	"relayfix/verifier"
)

// EnvCrashAt names a step boundary of a transaction (see store.Store.Hook, e.g. "swapped" or
// "swapping:1") at which hotfix kills itself with SIGKILL, right after journaling that step. It
// exists for the crash tests, which prove that the next command recovers from a kill at every
// boundary; nothing else should set it.
const EnvCrashAt = "RELAYFIX_CRASH_AT"

type applyOptions struct {
	pkg     string
	pubkey  string
	dryRun  bool
	timeout time.Duration
}

func newCmdApply(g *globalOptions) *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply PKG|ID",
		Short: "Verify a package and install it while the relay runs",
		Long: `apply verifies the package's signature and file table, checks its prerequisites
(service pack level), supersedence and that no file is older than the one installed, backs
up the files it replaces, swaps the new builds in, restarts the services the package names
through the relay's control socket and waits until they report the new build, healthy.
Any failure puts the previous build back, running. Nothing reboots the host; when relayd is
not running, the services start on the new build the next time it starts.

When relayd runs, apply then compares what it runs with what is installed: a component still
on its previous build (today relayd itself, which no transaction restarts) is reported as
"restart pending" after the summary, and in --json as "restart_pending": [{"name", "path",
"running", "installed"}]. The exit status stays 0, since the transaction is committed and
the root changed; scripts tell the two apart by that field.

Every step is journaled first (ROOT/hotfix/journal.json): an interrupted apply is finished or
undone by the next hotfix command, or explicitly by 'hotfix recover'. One transaction runs
at a time: a second one fails at once, naming the process that holds the root.

A package the root already has is not an error: apply says "already installed; nothing to
do" and exits 0. With --json, apply prints one object whatever happens: the result, with
"changed" (whether the root changed; with --dry-run, whether it would) and, on failure,
"error".

An ID (KB910618) instead of a file is fetched from the root's sources ('hotfix source add')
into ROOT/hotfix/sources, checked against the repository's signed metadata, and then applied
exactly as a file is.`,
		Example: `  hotfix apply dist/SP2.hfx --root /tmp/relay --pubkey dist/demo.pub
  hotfix apply KB910618 --root /tmp/relay
  hotfix apply dist/KB910618.hfx --root /tmp/relay --dry-run
  hotfix apply dist/KB910618.hfx --root /tmp/relay --json`,
		Args: exactArgs(1, "PKG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pkg = args[0]
			if err := checkHealthTimeout(o.timeout); err != nil {
				return err
			}
			return runApply(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	pubkeyFlag(f, &o.pubkey)
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	f.DurationVar(&o.timeout, "health-timeout", 15*time.Second, "how long a restarted service has to report the new build healthy (1s to 1h)")
	return cmd
}

// newStore returns the store of the command's root, talking to the relay on its control socket.
func newStore(g *globalOptions, timeout time.Duration) *store.Store {
	root := g.Root()
	return &store.Store{
		Root:          root,
		Services:      relayServices{control.Client{Path: root.ControlSocket()}},
		HealthTimeout: timeout,
		Hook:          crashHook(os.Getenv(EnvCrashAt)),
	}
}

// crashHook returns the Store hook that kills the process at the step named by at ("swapped",
// or "swapping:1" for one file), or nil when at is empty.
func crashHook(at string) func(string) {
	if at == "" {
		return nil
	}
	return func(step string) {
		if crashMatches(at, step) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// crashMatches reports whether the step boundary step is the one at names: exactly, or by its
// name alone ("swapping" matches "swapping:0", the first file).
func crashMatches(at, step string) bool {
	if step == at {
		return true
	}
	base, _, _ := strings.Cut(step, ":")
	return base == at && !strings.Contains(at, ":")
}

// readRoot checks that the command's root is an install root before a read-only command looks
// at it, and says on stderr when its last transaction did not finish. It changes nothing:
// finishing or undoing a transaction is for 'hotfix recover' and the commands that change the
// root. pending is the unfinished transaction (a *store.InterruptedError), for a command that
// cannot give a true answer while one is open.
func readRoot(g *globalOptions) (pending, err error) {
	root := g.Root()
	if err := store.CheckRoot(root); err != nil {
		return nil, err
	}
	if err := store.Pending(root); err != nil {
		var ie *store.InterruptedError
		if !errors.As(err, &ie) {
			return nil, err
		}
		fmt.Fprintf(g.stderr, "hotfix: warning: %v\n", err)
		return err, nil
	}
	return nil, nil
}

// trustedKeys returns the keys --pubkey names or, without it, the keys the root trusts; a
// directory that is not an install root has none to give.
func trustedKeys(g *globalOptions, pubkey string) ([]minisign.PublicKey, error) {
	keys, err := verifier.LoadTrustedKeys(g.Root(), pubkey)
	if err != nil && pubkey == "" {
		if rerr := store.CheckRoot(g.Root()); rerr != nil {
			return nil, fmt.Errorf("no --pubkey, and no trusted keys: %w", rerr)
		}
	}
	return keys, err
}

func runApply(ctx context.Context, g *globalOptions, o *applyOptions) error {
	root := g.Root()
	keys, err := trustedKeys(g, o.pubkey)
	if err != nil {
		return reportChange(ctx, g, store.ActionApply, nil, err)
	}
	if o.pkg, err = resolvePackage(ctx, g, o.pkg); err != nil {
		return reportChange(ctx, g, store.ActionApply, nil, err)
	}
	if _, err := os.Stat(o.pkg); err != nil {
		return reportChange(ctx, g, store.ActionApply, nil, fmt.Errorf("package: %w", err))
	}
	open := func(ctx context.Context, stageDir string) (*store.Staged, error) {
		op, err := archive.Open(ctx, o.pkg, archive.OpenOptions{Keys: keys, StageDir: stageDir})
		if err != nil {
			return nil, err
		}
		return &store.Staged{Manifest: op.Manifest, Files: op.Staged, KeyFiles: verifier.KeyFiles(o.pubkey)}, nil
	}
	s := newStore(g, o.timeout)
	res, plan, err := s.Apply(ctx, open, o.dryRun)
	if o.dryRun {
		if plan == nil {
			return reportChange(ctx, g, store.ActionApply, nil, err)
		}
		return reportPlan(g, plan, err)
	}
	if res != nil && res.TrustErr != nil {
		fmt.Fprintf(g.stderr, "hotfix: %v\n", res.TrustErr)
	} else if res != nil && len(res.TrustedKeys) > 0 && !g.json {
		fmt.Fprintf(g.stdout, "Trusting %s for later packages (%s).\n", o.pubkey, root.Trusted())
	}
	return reportChange(ctx, g, store.ActionApply, res, err)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printPlan(w io.Writer, p *store.Plan) {
	fmt.Fprintf(w, "Plan for %s (%s): %s\n", p.Package, p.Kind, p.Title)
	fmt.Fprintf(w, "  prerequisites: %s\n", p.Prerequisites)
	for _, f := range p.Files {
		fmt.Fprintf(w, "  %-14s %-12s %s -> %s\n", f.Path, f.Name, orNone(f.From), f.To)
	}
	fmt.Fprintf(w, "  restart services: %s\n", orNone(strings.Join(p.Services, ", ")))
	fmt.Fprintf(w, "  reboot: no\n")
	fmt.Fprintln(w, "Dry run: nothing was changed.")
}

func printResult(w io.Writer, r *store.Result) {
	verb := "Applied"
	if r.Action == store.ActionRollback {
		verb = "Rolled back"
	}
	title := ""
	if r.Title != "" {
		title = " (" + r.Title + ")"
	}
	fmt.Fprintf(w, "%s %s%s, transaction %s.\n", verb, r.Package, title, r.TxID)
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %-14s %s -> %s\n", f.Path, orNone(f.From), f.To)
	}
	for _, s := range r.Services {
		if s.Deferred {
			fmt.Fprintf(w, "  service %s: %s; it starts on the installed build when it next starts\n", s.Name, s.Note)
		} else {
			fmt.Fprintf(w, "  service %s: restarted, running %s, %s\n", s.Name, s.Version, s.Health)
		}
	}
	fmt.Fprintln(w, "  reboot: no")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
