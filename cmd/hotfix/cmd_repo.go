package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/tableprint"
	"relayfix/repository"
)

type repoOptions struct {
	dir    string
	keys   string
	pubkey string
	pkgs   []string
	within time.Duration
}

func newCmdRepo(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Publish packages in a signed repository of static files",
		Long: `repo maintains a hotfix repository: a directory of static files that any web server can
serve, signed with The Update Framework (root, targets, snapshot and timestamp roles, each
with its own key and expiry). Serve DIR/repository; keep DIR/keys private and never serve it.
Hosts add the repository with 'hotfix source add URL --trust DIR/repository/1.root.json'.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdRepoInit(g), newCmdRepoAdd(g), newCmdRepoRefresh(g), newCmdRepoList(g))
	return cmd
}

func newCmdRepoInit(g *globalOptions) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a repository: keys and the first signed metadata",
		Long: `init makes an Ed25519 key per role in DIR/keys (or uses the keys already in --keys, named
root.pem, targets.pem, snapshot.pem and timestamp.pem, PKCS #8 PEM), and writes version 1
of the metadata to DIR/repository with consistent snapshots. Expiries: root 365 days,
targets 90 days, snapshot 7 days, timestamp 2 days; run 'hotfix repo refresh' daily.`,
		Example: `  hotfix repo init /srv/hotfix
  hotfix repo init /srv/hotfix --keys /secure/hotfix-keys`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runRepoInit(g, o)
		},
	}
	cmd.Flags().StringVar(&o.keys, "keys", "", "directory of the role keys to use or create (default DIR/keys)")
	return cmd
}

func runRepoInit(g *globalOptions, o *repoOptions) error {
	p := &repository.Publisher{Dir: o.dir, Keys: o.keys}
	if err := p.Init(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Created repository %s: serve %s; hosts trust %s/1.root.json.\n", o.dir, p.Served(), p.Served())
	return nil
}

func newCmdRepoAdd(g *globalOptions) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "add DIR PKG...",
		Short: "Verify packages and publish them",
		Long: `add verifies each package (its minisign signature with --pubkey or the root's trusted
keys, then every payload file against the file table) and publishes those that verify in one
new signed version. Its id, kind, product and service-pack constraints, what it supersedes and
the known problems it fixes go into the target's custom metadata, so that hosts can decide
what applies to them without downloading it. If any package fails to verify, none is added.`,
		Example: `  hotfix repo add /srv/hotfix dist/SP2.hfx dist/KB910618.hfx --pubkey dist/demo.pub`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return exactArgs(2, "DIR", "PKG...")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir, o.pkgs = args[0], args[1:]
			return runRepoAdd(cmd.Context(), g, o)
		},
	}
	pubkeyFlag(cmd.Flags(), &o.pubkey)
	keysFlag(cmd, o)
	return cmd
}

// keysFlag adds --keys, where the role keys are when they are not in DIR/keys.
func keysFlag(cmd *cobra.Command, o *repoOptions) {
	cmd.Flags().StringVar(&o.keys, "keys", "", "directory of the role keys (default DIR/keys)")
}

func runRepoAdd(ctx context.Context, g *globalOptions, o *repoOptions) error {
	keys, err := trustedKeys(g, o.pubkey)
	if err != nil {
		return err
	}
	p := &repository.Publisher{Dir: o.dir, Keys: o.keys}
	if err := p.Open(); err != nil {
		return err
	}
	added, err := p.Add(ctx, o.pkgs, keys)
	if err != nil {
		return err
	}
	for _, e := range added {
		fmt.Fprintf(g.stdout, "Added %s (%s, %d bytes): %s\n", e.ID, e.Kind, e.Length, e.Title)
	}
	return nil
}

func newCmdRepoRefresh(g *globalOptions) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "refresh DIR",
		Short: "Re-sign the metadata that is about to expire (for cron)",
		Long: `refresh re-signs, with a new version and expiry, each role whose metadata expires within
--within, and always the timestamp. Hosts refuse expired metadata (a freeze attack looks
exactly like a repository nobody re-signs), so run it more often than the timestamp expires.`,
		Example: `  hotfix repo refresh /srv/hotfix
  hotfix repo refresh /srv/hotfix --within 72h`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runRepoRefresh(g, o)
		},
	}
	cmd.Flags().DurationVar(&o.within, "within", 24*time.Hour, "re-sign what expires within this time")
	keysFlag(cmd, o)
	return cmd
}

func runRepoRefresh(g *globalOptions, o *repoOptions) error {
	p := &repository.Publisher{Dir: o.dir, Keys: o.keys}
	if err := p.Open(); err != nil {
		return err
	}
	roles, err := p.Refresh(o.within)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Re-signed %s.\n", strings.Join(roles, ", "))
	return nil
}

func newCmdRepoList(g *globalOptions) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:     "list DIR",
		Short:   "List the packages a repository publishes",
		Example: `  hotfix repo list /srv/hotfix --json`,
		Args:    exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runRepoList(g, o)
		},
	}
	return cmd
}

func runRepoList(g *globalOptions, o *repoOptions) error {
	p := &repository.Publisher{Dir: o.dir}
	if err := p.Open(); err != nil {
		return err
	}
	es, err := p.List()
	if err != nil {
		return err
	}
	if g.json {
		if es == nil {
			es = []repository.Entry{}
		}
		return writeJSON(g.stdout, es)
	}
	t := tableprint.New(g.stdout, "Package", "Kind", "Requires", "Supersedes", "Fixes", "Title")
	for _, e := range es {
		var fixes []string
		for _, f := range e.Fixes {
			fixes = append(fixes, f.Signature)
		}
		t.Append(e.ID, string(e.Kind), requiresText(e), strings.Join(e.Supersedes, ","), strings.Join(fixes, "; "), e.Title)
	}
	return t.Render()
}

func requiresText(e repository.Entry) string {
	var parts []string
	if e.Requires.ServicePack > 0 {
		parts = append(parts, fmt.Sprintf("SP%d", e.Requires.ServicePack))
	}
	if e.Requires.ProductVersion != "" {
		parts = append(parts, e.Requires.ProductVersion)
	}
	return strings.Join(parts, ", ")
}
