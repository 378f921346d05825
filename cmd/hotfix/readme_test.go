package main

import (
	"flag"
	"testing"

	"relayfix/internal/clidoc"
)

var update = flag.Bool("update", false, "rewrite the README's CLI reference from the commands")

// The README's hotfix reference is generated from the commands; this keeps the two in step.
func TestReadmeReference(t *testing.T) {
	doc := clidoc.Markdown(newRootCmd(&globalOptions{}))
	if err := clidoc.Sync("../../README.md", "hotfix", doc, *update); err != nil {
		t.Fatal(err)
	}
}
