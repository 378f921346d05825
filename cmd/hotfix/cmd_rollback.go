package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdRollback(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("rollback: not yet available")
		},
	}
}
