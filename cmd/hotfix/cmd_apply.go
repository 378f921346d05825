package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdApply(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "apply",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("apply: not yet available")
		},
	}
}
