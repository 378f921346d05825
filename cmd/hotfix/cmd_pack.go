package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdPack(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "pack",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("pack: not yet available")
		},
	}
}
