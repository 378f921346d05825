// Package clidoc renders a cobra command tree as the Markdown CLI reference the README carries,
// and keeps the README in step with the commands: a test in each command's package regenerates
// its section and fails (or, with -update, rewrites it) when the two differ.
package clidoc

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Markdown renders cmd and its visible subcommands, depth first.
func Markdown(cmd *cobra.Command) string {
	var b bytes.Buffer
	write(&b, cmd)
	return b.String()
}

func write(b *bytes.Buffer, cmd *cobra.Command) {
	if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
		return
	}
	fmt.Fprintf(b, "#### `%s`\n\n", cmd.CommandPath())
	if cmd.Long != "" {
		b.WriteString(strings.TrimSpace(cmd.Long) + "\n\n")
	} else if cmd.Short != "" {
		b.WriteString(cmd.Short + "\n\n")
	}
	if cmd.Runnable() {
		fmt.Fprintf(b, "```\n%s\n```\n\n", cmd.UseLine())
	}
	if cmd.Example != "" {
		fmt.Fprintf(b, "Example:\n\n```\n%s\n```\n\n", strings.TrimRight(cmd.Example, "\n"))
	}
	if fl := cmd.NonInheritedFlags().FlagUsages(); fl != "" {
		fmt.Fprintf(b, "Flags:\n\n```\n%s```\n\n", fl)
	}
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			write(b, c)
		}
	}
}

// Section markers in the README.
func markers(name string) (begin, end string) {
	return "<!-- BEGIN " + name + " reference: generated from the commands; see internal/clidoc -->\n",
		"<!-- END " + name + " reference -->\n"
}

// Sync compares the README section named name with content. With update set it rewrites the
// section in place; otherwise it returns an error when they differ.
func Sync(readme, name, content string, update bool) error {
	b, err := os.ReadFile(readme)
	if err != nil {
		return fmt.Errorf("read %s: %w", readme, err)
	}
	begin, end := markers(name)
	s := string(b)
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q section between %q and %q", readme, name, strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	cur := s[i+len(begin) : j]
	if cur == content {
		return nil
	}
	if !update {
		return fmt.Errorf("the %s reference in %s is out of date with the commands; run `go test ./cmd/... -run Readme -update`", name, readme)
	}
	out := s[:i+len(begin)] + content + s[j:]
	if err := os.WriteFile(readme, []byte(out), 0o644); err != nil {
		return fmt.Errorf("update %s: %w", readme, err)
	}
	return nil
}
