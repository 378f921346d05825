package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdList(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("list: not yet available")
		},
	}
}
