package main

import (
	"context"
	"fmt"

	"relayfix/internal/exitcode"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
)

// changeReport is what apply and rollback print with --json, success or not: the transaction's
// result, whether the root changed, and on failure the error in the {"error": …} shape that
// verify --json and relayd ctl --json print. Scripts and configuration management decide
// "changed" and "failed" from these fields, never from the text.
type changeReport struct {
	*store.Result
	Changed bool   `json:"changed"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"` // hides Result.Error: the whole message, with what was done about it
	// RestartPending lists the components that still run another build than the one now
	// installed (relayd, which no transaction restarts yet): the change is on disk and takes
	// effect when they restart.
	RestartPending []installdb.Stale `json:"restart_pending,omitempty"`
}

// planReport is what apply --dry-run --json prints: the plan, and whether applying it would
// change the root.
type planReport struct {
	*store.Plan
	Changed bool   `json:"changed"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// upToDate is the message for a package the root already has.
func upToDate(id string) string { return id + " is already installed; nothing to do" }

// reportChange prints the outcome of apply or rollback: JSON (always, even for an error that
// left no result) or, on success, the text summary. It returns err for the exit code.
func reportChange(ctx context.Context, g *globalOptions, action string, res *store.Result, err error) error {
	if id, ok := store.AlreadyInstalled(err); ok {
		if g.json {
			return writeJSON(g.stdout, changeReport{Result: &store.Result{Action: action, Package: id,
				Files: []store.FileChange{}}, Message: upToDate(id)})
		}
		fmt.Fprintf(g.stdout, "%s.\n", upToDate(id))
		return nil
	}
	var stale []installdb.Stale
	if res != nil && res.State == store.StateCommitted {
		var perr error
		if stale, perr = restartPending(ctx, g.Root()); perr != nil {
			fmt.Fprintf(g.stderr, "hotfix: warning: %v\n", perr)
		}
	}
	if g.json {
		rep := changeReport{Result: res, Changed: res != nil && res.State == store.StateCommitted, RestartPending: stale}
		if err != nil {
			rep.Error = err.Error()
		}
		if werr := writeJSON(g.stdout, rep); werr != nil && err == nil {
			return werr
		}
		return err
	}
	if res != nil && err == nil {
		printResult(g.stdout, res)
		for _, s := range stale {
			fmt.Fprintf(g.stdout, "  %s\n", s)
		}
		if len(stale) > 0 {
			fmt.Fprintf(g.stdout, "The files are installed, but %s still runs the previous build until it restarts.\n", stale[0].Name)
		}
	}
	return err
}

// reportPlan prints a dry run's plan. A package the root already has is a plan that changes
// nothing, exit 0; any other unmet prerequisite is a failure, explained by the plan.
func reportPlan(g *globalOptions, plan *store.Plan, err error) error {
	id, same := store.AlreadyInstalled(err)
	if g.json {
		rep := planReport{Plan: plan, Changed: err == nil && plan.Ready}
		switch {
		case same:
			rep.Message = upToDate(id)
		case err != nil:
			rep.Error = err.Error()
		}
		if werr := writeJSON(g.stdout, rep); werr != nil && err == nil {
			return werr
		}
	} else if same {
		fmt.Fprintf(g.stdout, "%s.\n", upToDate(id))
	} else {
		printPlan(g.stdout, plan)
	}
	if same {
		return nil
	}
	if err != nil {
		return &exitcode.SilentError{Err: err}
	}
	return nil
}
