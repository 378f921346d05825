package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdInspect(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("inspect: not yet available")
		},
	}
}
