package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdKeygen(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("keygen: not yet available")
		},
	}
}
