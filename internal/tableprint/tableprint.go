// Package tableprint prints tables the way a terminal user and a script each want them: boxed
// (tablewriter) on a terminal, plain tab-separated lines when the output is piped or redirected.
package tableprint

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Table collects rows and prints them with a header.
type Table struct {
	w      io.Writer
	boxed  bool
	header []string
	rows   [][]string
}

// New returns a table that prints to w, boxed when w is a terminal.
func New(w io.Writer, header ...string) *Table {
	return &Table{w: w, boxed: IsTerminal(w), header: header}
}

// NewBoxed returns a table that always prints boxed, as a KB article's tables read.
func NewBoxed(w io.Writer, header ...string) *Table {
	return &Table{w: w, boxed: true, header: header}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Append adds a row.
func (t *Table) Append(cells ...string) { t.rows = append(t.rows, cells) }

// Render prints the table.
func (t *Table) Render() error {
	if !t.boxed {
		var b strings.Builder
		b.WriteString(strings.Join(t.header, "\t"))
		b.WriteByte('\n')
		for _, r := range t.rows {
			b.WriteString(strings.Join(r, "\t"))
			b.WriteByte('\n')
		}
		_, err := io.WriteString(t.w, b.String())
		return err
	}
	tbl := tablewriter.NewTable(t.w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})),
		tablewriter.WithHeaderAutoFormat(tw.Off),
	)
	tbl.Header(toAny(t.header)...)
	for _, r := range t.rows {
		if err := tbl.Append(toAny(r)...); err != nil {
			return fmt.Errorf("table row: %w", err)
		}
	}
	if err := tbl.Render(); err != nil {
		return fmt.Errorf("render table: %w", err)
	}
	return nil
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
