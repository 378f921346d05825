package store

import "fmt"

// Step is a boundary of a transaction at which the store calls Store.Hook, right after it
// journaled the step. Steps lists them all, so that a crash test takes its kill points from the
// store itself and a step added here is tested without anyone remembering to.
type Step struct {
	Name string // as Hook receives it, e.g. "swapping:1"
	// Finishes is true when recovery from a kill at this step finishes the transaction (its
	// build was seen healthy); from any other step recovery undoes it.
	Finishes bool
	// Relay is true for a step reached only when a running relay restarts a service.
	Relay bool
	// Undo is true for a step on the way back, reached only when a transaction fails.
	Undo bool
	// Over is true once the journal records the transaction as over (committed or rolled back):
	// recovery from a kill there has nothing left to do.
	Over bool
}

// stepRestarted is the boundary at which the relay has switched to the new build, health not
// yet confirmed. It is not a journal state: the journal still says "restarting".
const stepRestarted = "restarted"

func swappingStep(i int) string { return fmt.Sprintf("%s:%d", StateSwapping, i) }

// preparedStep is the boundary at which the new file i is written and synced, not yet renamed in.
func preparedStep(i int) string { return fmt.Sprintf("prepared:%d", i) }

// Steps returns the step boundaries of a transaction that changes the given number of files, in
// the order a transaction reaches them: forward to committed, then the way back.
func Steps(files int) []Step {
	steps := []Step{{Name: string(StateVerified)}, {Name: string(StateStaged)}, {Name: string(StateBackedUp)}}
	for i := 0; i < files; i++ {
		steps = append(steps, Step{Name: swappingStep(i)}, Step{Name: preparedStep(i)})
	}
	return append(steps,
		Step{Name: string(StateSwapped)},
		Step{Name: string(StateRestarting)},
		Step{Name: stepRestarted, Relay: true},
		Step{Name: string(StateHealthy), Finishes: true},
		Step{Name: string(StateCommitted), Finishes: true, Over: true},
		Step{Name: string(StateRollingBack), Undo: true},
		Step{Name: string(StateRolledBack), Undo: true, Over: true},
	)
}
