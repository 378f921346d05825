package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCmdHistory(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "history",
		Short: "not yet available",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("history: not yet available")
		},
	}
}
