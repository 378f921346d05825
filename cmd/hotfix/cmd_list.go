package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"relayfix/internal/humantime"
	"relayfix/internal/tableprint"
	"relayfix/packages/installdb"
)

type listOptions struct {
	utc bool
}

func newCmdList(g *globalOptions) *cobra.Command {
	o := &listOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the installed files in the KB article's columns",
		Long: `list shows every installed file as a KB article's file table does — file name, file
version, file size, date, time, platform — plus the package that installed it. Dates are
recorded in UTC and shown in local time unless --utc; each time names its zone, with the
offset that zone had on that date (08:00 EDT for 17-Oct-2005 12:00 UTC in New York).
With --json it prints an array of objects with the keys name, path, version, size, date
(RFC 3339, UTC), platform, sha256 and package.

When relayd runs, a file whose running build differs from the installed one (relayd after a
package replaced bin/relayd, until it restarts) is named under the table as "restart
pending", and its --json object carries "restart_pending": true and "running": VERSION.

list only reads: after an interrupted transaction it says so on stderr and names
'hotfix recover'.`,
		Example: `  hotfix list --root /tmp/relay
  hotfix list --root /tmp/relay --utc
  hotfix list --root /tmp/relay --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(cmd.Context(), g, o, time.Local)
		},
	}
	cmd.Flags().BoolVar(&o.utc, "utc", false, "show dates and times in UTC")
	return cmd
}

// listRow is one installed file as --json prints it.
type listRow struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Version  string `json:"version"`
	Size     int64  `json:"size"`
	Date     string `json:"date"`
	Platform string `json:"platform"`
	SHA256   string `json:"sha256"`
	Package  string `json:"package"`
	// RestartPending is set when the running relay runs another build of this file (Running).
	RestartPending bool   `json:"restart_pending,omitempty"`
	Running        string `json:"running,omitempty"`
}

func runList(ctx context.Context, g *globalOptions, o *listOptions, loc *time.Location) error {
	if _, err := readRoot(g); err != nil {
		return err
	}
	db, err := installdb.Load(g.Root())
	if err != nil {
		return err
	}
	stale, perr := restartPending(ctx, g.Root())
	if perr != nil {
		fmt.Fprintf(g.stderr, "hotfix: warning: %v\n", perr)
	}
	if g.json {
		rows := []listRow{}
		for _, f := range db.Files {
			row := listRow{Name: f.Name, Path: f.Path, Version: f.Version.String(), Size: f.Size,
				Date: f.Date.UTC().Format(time.RFC3339), Platform: f.Platform, SHA256: f.SHA256, Package: f.Package}
			for _, s := range stale {
				if s.Path == f.Path {
					row.RestartPending, row.Running = true, s.Running
				}
			}
			rows = append(rows, row)
		}
		return writeJSON(g.stdout, rows)
	}
	loc = humantime.In(o.utc, loc)
	t := tableprint.New(g.stdout, "File name", "File version", "File size", "Date", "Time", "Platform", "Package")
	for _, f := range db.Files {
		t.Append(f.Name, f.Version.String(), groupThousands(f.Size), humantime.Date(f.Date, loc), humantime.Clock(f.Date, loc), f.Platform, f.Package)
	}
	if len(db.Files) == 0 {
		fmt.Fprintf(g.stderr, "hotfix: nothing is installed in %s\n", g.Root())
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, s := range stale {
		fmt.Fprintln(g.stdout, s)
	}
	return nil
}

// groupThousands writes n as KB articles write file sizes: 99,040.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
