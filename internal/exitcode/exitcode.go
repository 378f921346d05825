// Package exitcode is the command-line contract that hotfix and relayd share: exit 0 on success,
// 1 when something failed or did not verify, 2 when the command line was wrong. Commands return
// errors; Of maps an error to its exit code and prints it, in one place for both binaries.
package exitcode

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes.
const (
	OK     = 0
	Failed = 1 // something failed or did not verify
	Usage  = 2 // the command line was wrong
)

// UsageError marks an error in the command line itself.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// SilentError is a failure whose explanation the command already printed.
type SilentError struct{ Err error }

func (e *SilentError) Error() string { return e.Err.Error() }
func (e *SilentError) Unwrap() error { return e.Err }

// Of returns the exit code for err and prints err on stderr as "prog: err" (unless it is a
// SilentError), with a pointer to --help after a usage error.
func Of(err error, prog string, stderr io.Writer) int {
	return OfCommand(err, prog, prog, stderr)
}

// OfCommand is Of for a program with subcommands: a usage error points to the help of command,
// the subcommand whose line was wrong ("hotfix apply"), rather than to the program's.
func OfCommand(err error, prog, command string, stderr io.Writer) int {
	if err == nil {
		return OK
	}
	var silent *SilentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	var usage *UsageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", command)
		return Usage
	}
	return Failed
}
