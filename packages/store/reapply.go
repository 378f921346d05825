package store

import (
	"errors"

	"relayfix/verifier"
)

// AlreadyInstalled reports whether err refuses a package because the root already has it, every
// file in place. Applying it again would change nothing, so for a caller that states what a root
// should have (a configuration-management run, a rerun script) this is success, not failure.
func AlreadyInstalled(err error) (id string, ok bool) {
	var pe *verifier.PrerequisiteError
	if errors.As(err, &pe) && pe.Unmet == verifier.UnmetInstalled {
		return pe.Package, true
	}
	return "", false
}
