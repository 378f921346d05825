package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/progress"
	"relayfix/packages/archive"
	"relayfix/verifier"
)

type verifyOptions struct {
	pkg    string
	pubkey string
}

func newCmdVerify(g *globalOptions) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [PKG]",
		Short: "Verify a package's signature and file table, or an install root's files",
		Long: `verify PKG checks a package without installing it: first the minisign signature over
its manifest, then every payload file against the manifest's file table: size, SHA-256,
file version (read from the stamp in the binary), platform (from the executable header) and
date and time (UTC, to the second). It prints each check of each file, ok or FAIL; the first
failure ends the check, and the error names the file and what failed.

The signature must verify with a trusted key: the --pubkey files, or else every minisign
public key in ROOT/hotfix/trusted/*.pub.

verify without PKG checks the files installed in the root against the installed-files
database instead. With --json it prints one object: "root", "ok", "files" (each file's
checks) and, when a file drifted, "error".`,
		Example: `  hotfix verify dist/KB910618.hfx --pubkey dist/demo.pub
  hotfix verify dist/KB910618.hfx --root /var/lib/relayfix --json
  hotfix verify --root /var/lib/relayfix`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return exitcode.Usagef("verify takes at most one package, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return runVerifyRoot(cmd.Context(), g)
			}
			o.pkg = args[0]
			return runVerifyPackage(cmd.Context(), g, o)
		},
	}
	pubkeyFlag(cmd.Flags(), &o.pubkey)
	return cmd
}

// verifyResult is what verify --json prints.
type verifyResult struct {
	Package        string                `json:"package"`
	ID             string                `json:"id,omitempty"`
	OK             bool                  `json:"ok"`
	KeyID          string                `json:"key_id,omitempty"`
	TrustedComment string                `json:"trusted_comment,omitempty"`
	Files          []verifier.FileReport `json:"files"`
	Error          string                `json:"error,omitempty"`
}

func runVerifyPackage(ctx context.Context, g *globalOptions, o *verifyOptions) error {
	keys, err := trustedKeys(g, o.pubkey)
	if err != nil {
		return err
	}
	res := verifyResult{Package: o.pkg, Files: []verifier.FileReport{}}
	meter := progress.New(g.stderr, "verifying "+filepath.Base(o.pkg))
	defer meter.Done()
	opts := archive.OpenOptions{Keys: keys, Progress: meter.Update, OnFile: func(r verifier.FileReport) {
		meter.Done()
		res.Files = append(res.Files, r)
		if !g.json {
			printFileReport(g.stdout, r)
		}
	}}
	opened, err := archive.Open(ctx, o.pkg, opts)
	if err == nil {
		res.OK, res.ID = true, opened.Manifest.ID
		res.KeyID, res.TrustedComment = verifier.KeyID(opened.KeyID), opened.TrustedComment
	}
	if g.json {
		if err != nil {
			res.Error = err.Error()
		}
		if werr := writeJSON(g.stdout, res); werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "signature ok: key %s, trusted comment %q\n", res.KeyID, res.TrustedComment)
	fmt.Fprintf(g.stdout, "Package %s verified: %d files.\n", res.ID, len(res.Files))
	return nil
}

// printFileReport prints one file's checks on one line: "bin/msgtrack  size ok  sha256 FAIL ...".
func printFileReport(w io.Writer, r verifier.FileReport) {
	var b strings.Builder
	b.WriteString(r.Path)
	for _, c := range r.Checks {
		if c.OK {
			fmt.Fprintf(&b, "  %s ok", c.Name)
		} else {
			fmt.Fprintf(&b, "  %s FAIL (manifest %s, file %s)", c.Name, c.Want, c.Got)
		}
	}
	fmt.Fprintln(w, b.String())
}
