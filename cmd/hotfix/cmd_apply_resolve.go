package main

import (
	"context"
	"fmt"
	"os"
	"regexp"

	"relayfix/packages/store"
	"relayfix/repository"
)

// packageID is what apply takes for a package id rather than a path: the form of a manifest id,
// with no directory and no .hfx ending.
var packageID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// resolvePackage turns apply's argument into a package file. An existing file is used as it is.
// An argument that is not a file and reads as a package id (KB910618) is fetched through the
// root's sources into the cache under the root, verified against the signed repository metadata
// on the way; apply then verifies the file exactly as a local one (signature, file table).
func resolvePackage(ctx context.Context, g *globalOptions, arg string) (string, error) {
	if _, err := os.Stat(arg); err == nil || !packageID.MatchString(arg) {
		return arg, nil
	}
	if err := store.CheckRoot(g.Root()); err != nil {
		return "", fmt.Errorf("package %s: not a file, and no sources to fetch it from: %w", arg, err)
	}
	path, err := (&repository.Client{Root: g.Root()}).Fetch(ctx, arg)
	if err != nil {
		return "", fmt.Errorf("package %s: not a file, and fetching it as a package id failed: %w", arg, err)
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "Fetched %s from the repository (%s).\n", arg, path)
	}
	return path, nil
}
