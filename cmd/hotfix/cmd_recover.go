package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdRecover(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("recover: not yet available")
		},
	}
}
