package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdVerify(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("verify: not yet available")
		},
	}
}
