package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/tableprint"
	"relayfix/manifest"
	"relayfix/packages/archive"
	"relayfix/verifier"
)

type inspectOptions struct {
	pkg    string
	pubkey string
}

func newCmdInspect(g *globalOptions) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect PKG",
		Short: "Show a package the way a KB article describes a hotfix",
		Long: `inspect prints what a package says about itself, laid out as a KB article: title, id,
kind and release date; prerequisites; restart requirement; hotfix replacement information;
and the file information table (file name, file version, file size, date, time, platform),
with dates and times in UTC.

inspect needs no key. It says whether the manifest's signature verifies with the trusted keys
(--pubkey, else ROOT/hotfix/trusted/*.pub) when there are any; it does not check the payload
(hotfix verify does).`,
		Example: `  hotfix inspect dist/KB910618.hfx
  hotfix inspect dist/KB910618.hfx --pubkey dist/demo.pub --json`,
		Args: exactArgs(1, "PKG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pkg = args[0]
			return runInspect(cmd.Context(), g, o)
		},
	}
	pubkeyFlag(cmd.Flags(), &o.pubkey)
	return cmd
}

// signatureStatus says whether a package's signature verified, and with which key or why not.
type signatureStatus struct {
	Verified bool   `json:"verified"`
	KeyID    string `json:"key_id,omitempty"`
	Comment  string `json:"trusted_comment,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

func runInspect(ctx context.Context, g *globalOptions, o *inspectOptions) error {
	p, err := archive.Peek(ctx, o.pkg, archive.Limits{})
	if err != nil {
		return err
	}
	if p.ParseErr != nil {
		return fmt.Errorf("package %s: %w", o.pkg, p.ParseErr)
	}
	var sig signatureStatus
	if keys, err := trustedKeys(g, o.pubkey); err != nil {
		sig.Detail = "not checked: " + err.Error()
	} else if id, comment, err := p.Verify(keys); err != nil {
		sig.Detail = err.Error()
	} else {
		sig = signatureStatus{Verified: true, KeyID: verifier.KeyID(id), Comment: comment}
	}
	if g.json {
		return writeJSON(g.stdout, struct {
			Package   string             `json:"package"`
			Signature signatureStatus    `json:"signature"`
			Manifest  *manifest.Manifest `json:"manifest"`
		}{o.pkg, sig, p.Manifest})
	}
	return printKB(g.stdout, p.Manifest, sig)
}

// printKB prints a manifest in the sections and wording of a KB article.
func printKB(w io.Writer, m *manifest.Manifest, sig signatureStatus) error {
	kind := "hotfix"
	if m.Kind == manifest.KindServicePack {
		kind = "service pack"
	}
	fmt.Fprintf(w, "%s: %s\n\n", m.ID, m.Title)
	fmt.Fprintf(w, "  ID:        %s\n  Kind:      %s\n", m.ID, kind)
	if d, err := time.Parse("2006-01-02", m.Released); err == nil {
		fmt.Fprintf(w, "  Released:  %s\n", d.Format("02-Jan-2006"))
	} else {
		fmt.Fprintf(w, "  Released:  %s\n", m.Released)
	}
	fmt.Fprintf(w, "  Product:   %s\n", productLine(m))
	if m.Expires != nil {
		fmt.Fprintf(w, "  Expires:   %s UTC\n", m.Expires.UTC().Format("02-Jan-2006 15:04"))
	}
	if sig.Verified {
		fmt.Fprintf(w, "  Signature: verified with trusted key %s\n", sig.KeyID)
	} else {
		fmt.Fprintf(w, "  Signature: NOT verified (%s)\n", sig.Detail)
	}

	fmt.Fprintf(w, "\nPrerequisites\n\n  %s\n", prerequisites(m, kind))

	fmt.Fprintf(w, "\nRestart requirement\n\n")
	if m.Restart.Reboot {
		fmt.Fprintf(w, "  You must restart the computer after you apply this %s.\n", kind)
	} else {
		fmt.Fprintf(w, "  You do not have to restart the computer after you apply this %s.\n", kind)
	}
	if len(m.Restart.Services) > 0 {
		fmt.Fprintf(w, "  These services are restarted when you apply it: %s.\n", strings.Join(m.Restart.Services, ", "))
	}

	fmt.Fprintf(w, "\nHotfix replacement information\n\n")
	if len(m.Supersedes) == 0 {
		fmt.Fprintf(w, "  This %s does not replace any other hotfixes.\n", kind)
	} else {
		fmt.Fprintf(w, "  This %s replaces %s.\n", kind, strings.Join(m.Supersedes, ", "))
	}

	fmt.Fprintf(w, "\nFile information\n\n")
	fmt.Fprintf(w, "  The dates and times for these files are listed in Coordinated Universal Time (UTC).\n\n")
	return printFileTable(w, tableprint.NewBoxed(w, fileTableColumns()...), m.Files)
}

func productLine(m *manifest.Manifest) string {
	s := m.Product.Name
	if m.Product.Version != "" {
		s += " " + m.Product.Version
	}
	if m.Product.ServicePack > 0 {
		s += fmt.Sprintf(" (service pack %d)", m.Product.ServicePack)
	}
	return s
}

func prerequisites(m *manifest.Manifest, kind string) string {
	var need []string
	if m.Requires.ServicePack > 0 {
		need = append(need, fmt.Sprintf("service pack %d", m.Requires.ServicePack))
	}
	if m.Requires.ProductVersion != "" {
		need = append(need, fmt.Sprintf("%s version %s", m.Product.Name, m.Requires.ProductVersion))
	}
	if len(need) == 0 {
		return fmt.Sprintf("This %s has no prerequisites.", kind)
	}
	return fmt.Sprintf("To apply this %s, you must have %s installed.", kind, strings.Join(need, " and "))
}
