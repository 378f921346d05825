package clidoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestMarkdownAndSync(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "does things"}
	sub := &cobra.Command{Use: "sub ARG", Short: "a verb", Example: "  tool sub x", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().Bool("json", false, "print JSON")
	hidden := &cobra.Command{Use: "secret", Hidden: true, Run: func(*cobra.Command, []string) {}}
	root.AddCommand(sub, hidden)
	doc := Markdown(root)
	for _, want := range []string{"#### `tool`", "#### `tool sub`", "tool sub ARG", "--json", "tool sub x"} {
		if !strings.Contains(doc, want) {
			t.Errorf("markdown lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "secret") {
		t.Errorf("markdown shows a hidden command")
	}

	readme := filepath.Join(t.TempDir(), "README.md")
	begin, end := markers("tool")
	if err := os.WriteFile(readme, []byte("intro\n"+begin+"old\n"+end+"outro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Sync(readme, "tool", doc, false); err == nil {
		t.Fatal("Sync accepted an out-of-date section")
	}
	if err := Sync(readme, "tool", doc, true); err != nil {
		t.Fatal(err)
	}
	if err := Sync(readme, "tool", doc, false); err != nil {
		t.Fatalf("after update: %v", err)
	}
	b, _ := os.ReadFile(readme)
	if !strings.HasPrefix(string(b), "intro\n") || !strings.HasSuffix(string(b), end+"outro\n") {
		t.Errorf("update touched text outside the section:\n%s", b)
	}
	if err := Sync(readme, "other", doc, false); err == nil {
		t.Error("Sync accepted a README without the section")
	}
}
