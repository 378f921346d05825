package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
	"relayfix/internal/humantime"
	"relayfix/internal/progress"
	"relayfix/internal/safefile"
	"relayfix/internal/tableprint"
	"relayfix/manifest"
	"relayfix/packages/archive"
)

type packOptions struct {
	manifest     string
	key          string
	signature    string
	files        []string
	date         string
	out          string
	manifestOnly bool
}

func newCmdPack(g *globalOptions) *cobra.Command {
	o := &packOptions{}
	cmd := &cobra.Command{
		Use:   "pack --manifest TEMPLATE.json --key SECRET.key --file PATH=SRC... -o OUT.hfx",
		Short: "Build and sign a hotfix package",
		Long: `pack builds a package from a manifest template and the payload files. For every row of
the template's file table (and every --file the template does not list) it measures the
source file: size, SHA-256, file version (read from the stamp in the binary), platform (from
the executable header) and date (the file's modification time in UTC, to the second, or
--date). It then signs the manifest with the minisign secret key, writes the package and
prints the filled file table (dates and times in UTC).

To sign with the minisign tool instead, fill the manifest with --manifest-only, sign it,
and pack the signed manifest with --signature:

  hotfix pack --manifest T.json --file bin/msgtrack=build/msgtrack --manifest-only -o M.json
  minisign -S -s minisign.key -m M.json
  hotfix pack --manifest M.json --signature M.json.minisig --file bin/msgtrack=build/msgtrack -o P.hfx

An encrypted secret key is decrypted with the password in $` + envKeyPassword + `.`,
		Example: `  hotfix pack --manifest kb910618.json --key dist/demo.key \
      --file bin/msgtrack=bin/kb910618/msgtrack --date 2006-02-14T03:36:00Z -o dist/KB910618.hfx`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.manifest == "":
				return exitcode.Usagef("pack: --manifest is required")
			case o.out == "":
				return exitcode.Usagef("pack: -o OUT is required")
			case o.manifestOnly && (o.key != "" || o.signature != ""):
				return exitcode.Usagef("pack: --manifest-only signs nothing: drop --key and --signature")
			case !o.manifestOnly && (o.key == "") == (o.signature == ""):
				return exitcode.Usagef("pack: give exactly one of --key and --signature")
			}
			return runPack(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.manifest, "manifest", "", "manifest template (JSON); with --signature, the signed manifest")
	f.StringVar(&o.key, "key", "", "minisign secret key to sign with")
	f.StringVar(&o.signature, "signature", "", "minisign signature of the --manifest file, made elsewhere")
	f.StringArrayVar(&o.files, "file", nil, "payload file as INSTALLPATH=SOURCE (repeatable)")
	f.StringVar(&o.date, "date", "", "date and time for every file, RFC 3339 (default: each file's modification time)")
	f.StringVarP(&o.out, "out", "o", "", "write the package (or with --manifest-only, the manifest) here")
	f.BoolVar(&o.manifestOnly, "manifest-only", false, "write the filled manifest, unsigned, instead of a package")
	return cmd
}

func runPack(ctx context.Context, g *globalOptions, o *packOptions) error {
	payload := make(map[string]string, len(o.files))
	for _, f := range o.files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok || dst == "" || src == "" {
			return exitcode.Usagef("pack: --file %q: want INSTALLPATH=SOURCE", f)
		}
		if _, dup := payload[dst]; dup {
			return exitcode.Usagef("pack: --file %s given twice", dst)
		}
		payload[dst] = src
	}
	meter := progress.New(g.stderr, "packing "+filepath.Base(o.out))
	defer meter.Done()
	opts := archive.PackOptions{Progress: meter.Update}
	if o.date != "" {
		d, err := time.Parse(time.RFC3339, o.date)
		if err != nil {
			return exitcode.Usagef("pack: --date %q: want RFC 3339, like 2006-02-14T03:36:00Z", o.date)
		}
		opts.Date = d
	}
	mb, err := os.ReadFile(o.manifest)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}

	var m *manifest.Manifest
	var written int64
	switch {
	case o.signature != "":
		sig, err := os.ReadFile(o.signature)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		written, err = writeAtomically(o.out, func(w io.Writer) error {
			m, err = archive.PackSigned(ctx, w, mb, sig, payload)
			return err
		})
		if err != nil {
			return err
		}
	default:
		tmpl, err := manifest.ParseTemplate(mb)
		if err != nil {
			return fmt.Errorf("pack: manifest template %s: %w", o.manifest, err)
		}
		if o.manifestOnly {
			if m, err = archive.Fill(ctx, tmpl, payload, opts); err != nil {
				return fmt.Errorf("pack: %w", err)
			}
			filled, err := m.Marshal()
			if err != nil {
				return fmt.Errorf("pack: %w", err)
			}
			if written, err = writeAtomically(o.out, func(w io.Writer) error {
				_, err := w.Write(filled)
				return err
			}); err != nil {
				return err
			}
			break
		}
		key, err := readSecretKey(o.key)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		written, err = writeAtomically(o.out, func(w io.Writer) error {
			m, err = archive.Pack(ctx, w, tmpl, payload, key, opts)
			return err
		})
		if err != nil {
			return err
		}
	}

	if g.json {
		return writeJSON(g.stdout, struct {
			Output   string             `json:"output"`
			Size     int64              `json:"size"`
			Manifest *manifest.Manifest `json:"manifest"`
		}{o.out, written, m})
	}
	what := "package"
	if o.manifestOnly {
		what = "unsigned manifest"
	}
	fmt.Fprintf(g.stdout, "Wrote %s %s (%s, %s bytes).\n", what, o.out, m.ID, groupThousands(written))
	return printFileTable(g.stdout, tableprint.New(g.stdout, fileTableColumns()...), m.Files)
}

// writeAtomically writes the output through write into a temporary file next to path, and renames
// it into place, durably, only when write succeeded, so a failed pack never leaves a
// half-written package and a package reported written survives a power loss.
func writeAtomically(path string, write func(io.Writer) error) (int64, error) {
	return safefile.Write(path, safefile.Options{Perm: 0o644}, write)
}

// fileTableColumns are the columns of a KB article's file information table.
func fileTableColumns() []string {
	return []string{"File name", "File version", "File size", "Date", "Time", "Platform"}
}

// printFileTable prints the file rows in the KB's columns, in UTC: sizes grouped by thousands
// (99,040), dates like 14-Feb-2006 and times like 03:36 UTC.
func printFileTable(w io.Writer, t *tableprint.Table, files []manifest.File) error {
	for _, f := range files {
		t.Append(f.Name, f.Version.String(), groupThousands(f.Size), humantime.Date(f.Date, time.UTC), humantime.Clock(f.Date, time.UTC), f.Platform)
	}
	return t.Render()
}
