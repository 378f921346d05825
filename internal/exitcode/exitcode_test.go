package exitcode

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestOfCommandPointsToTheSubcommandsHelp(t *testing.T) {
	var b bytes.Buffer
	if got := OfCommand(Usagef("apply needs 1 argument(s)"), "hotfix", "hotfix apply", &b); got != Usage {
		t.Errorf("code %d, want %d", got, Usage)
	}
	if want := "hotfix: apply needs 1 argument(s)\nRun 'hotfix apply --help' for usage.\n"; b.String() != want {
		t.Errorf("stderr %q, want %q", b.String(), want)
	}
}

func TestOf(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"success", nil, OK, ""},
		{"failure", errors.New("verify KB910618.hfx: bin/msgtrack: size mismatch"), Failed, "hotfix: verify KB910618.hfx: bin/msgtrack: size mismatch\n"},
		{"usage", Usagef("pack: --manifest is required"), Usage, "hotfix: pack: --manifest is required\nRun 'hotfix --help' for usage.\n"},
		{"wrapped usage", fmt.Errorf("apply: %w", Usagef("bad flag")), Usage, "hotfix: apply: bad flag\nRun 'hotfix --help' for usage.\n"},
		{"silent failure", &SilentError{errors.New("already said")}, Failed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if got := Of(tc.err, "hotfix", &b); got != tc.code {
				t.Errorf("code %d, want %d", got, tc.code)
			}
			if b.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", b.String(), tc.stderr)
			}
		})
	}
}
