package main

import (
	"context"
	"errors"
)

// runVerifyRoot checks every installed file of the root against the installed-files database.
func runVerifyRoot(ctx context.Context, g *globalOptions) error {
	return errors.New("verify --root: not yet available")
}
