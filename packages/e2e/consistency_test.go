package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
)

// TestJSONFailuresAreOneObject runs every hotfix command into a failure with --json and checks
// that stdout holds one JSON object with an "error", whatever the command.
func TestJSONFailuresAreOneObject(t *testing.T) {
	dir := t.TempDir()
	notRoot := layout.Root(filepath.Join(dir, "none"))
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a package\n"), 0o644)
	cmds := [][]string{
		{"keygen"},
		{"pack", "--manifest", text},
		{"verify", text, "--pubkey", e.pub},
		{"verify"},
		{"inspect", text},
		{"list"},
		{"history"},
		{"apply", e.kb, "--pubkey", e.pub},
		{"rollback", "msgtrack"},
		{"recover"},
		{"repo", "list", filepath.Join(dir, "norepo")},
		{"source", "list"},
		{"check"},
	}
	for _, args := range cmds {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := hotfix(t, notRoot, nil, append(args, "--json")...)
			var obj map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
				t.Fatalf("exit %d, stdout is not one JSON object: %v\n%s%s", r.code, err, r.stdout, r.stderr)
			}
			if s, _ := obj["error"].(string); s == "" || r.code == 0 {
				t.Errorf("exit %d, object without an error: %s", r.code, r.stdout)
			}
		})
	}
}

// TestRecoverFailureIsOneErrorObject makes recovery itself fail (an apply killed after it
// swapped the new build in, its backup gone) and checks that `recover --json` prints the one error
// object, not a report saying there was nothing to recover, exits 1, and leaves the transaction
// open for a later attempt.
func TestRecoverFailureIsOneErrorObject(t *testing.T) {
	root := freshSP2(t)
	if r := hotfix(t, root, []string{"RELAYFIX_CRASH_AT=swapped"}, "apply", e.kb); !r.killed {
		t.Fatalf("apply with RELAYFIX_CRASH_AT=swapped was not killed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.RemoveAll(root.Backups()); err != nil {
		t.Fatal(err)
	}
	for _, asJSON := range []bool{true, false} {
		args := []string{"recover"}
		if asJSON {
			args = append(args, "--json")
		}
		r := hotfix(t, root, nil, args...)
		if r.code != 1 {
			t.Errorf("%v with the backup gone: exit %d, want 1\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if !asJSON {
			if r.stdout != "" || !strings.Contains(r.stderr, "undo apply of KB910618") {
				t.Errorf("%v: stdout %q, stderr %q; want nothing on stdout and the failed undo on stderr", args, r.stdout, r.stderr)
			}
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &obj); err != nil {
			t.Fatalf("%v: stdout is not one JSON object: %v\n%s", args, err, r.stdout)
		}
		if msg, _ := obj["error"].(string); !strings.Contains(msg, "undo apply of KB910618") || len(obj) != 1 {
			t.Errorf("%v: %s, want only an error naming the failed undo", args, r.stdout)
		}
	}
	if r := hotfix(t, root, nil, "list"); !strings.Contains(r.stderr, "hotfix recover") {
		t.Errorf("after a failed recovery list does not name 'hotfix recover': %q", r.stderr)
	}
}

// TestErrorsSayWhatToDo checks the messages an operator meets on common mistakes, and the exit
// codes: command-line mistakes 2, everything else 1.
func TestErrorsSayWhatToDo(t *testing.T) {
	root := freshSP2(t)
	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte("not a package\n"), 0o644)
	key := filepath.Join(t.TempDir(), "demo")
	mustHotfix(t, root, "keygen", "-o", key)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"apply"}, 2, "Run 'hotfix apply --help' for usage."},
		{[]string{"rollback", "--bogus"}, 2, "Run 'hotfix rollback --help' for usage."},
		{[]string{"source", "add", "http://127.0.0.1:1"}, 2, "Run 'hotfix source add --help' for usage."},
		{[]string{"nonsense"}, 2, "Run 'hotfix --help' for usage."},
		{[]string{"apply", e.kb, "--health-timeout", "0s"}, 2, "--health-timeout 0s: must be from 1s to 1h0m0s"},
		{[]string{"rollback", "msgtrack", "--health-timeout", "1ms"}, 2, "--health-timeout 1ms: must be from 1s to 1h0m0s"},
		{[]string{"apply", e.kb, "--health-timeout", "-5s"}, 2, "Run 'hotfix apply --help' for usage."},
		{[]string{"verify", text}, 1, "not a relayfix package (not a zstd-compressed archive)"},
		{[]string{"apply", text}, 1, "not a relayfix package (not a zstd-compressed archive)"},
		{[]string{"inspect", text}, 1, "not a relayfix package (not a zstd-compressed archive)"},
		{[]string{"verify", e.kb, "--pubkey", key + ".key"}, 1, "--pubkey names a secret key; give the .pub file"},
		{[]string{"rollback", "foo"}, 1, "rollback foo: no installed component or hotfix by that name; nothing installed here can be rolled back"},
		{[]string{"apply", filepath.Join(t.TempDir(), "missing.hfx")}, 1, "no such file"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			before := snapshot(t, root)
			r := hotfix(t, root, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want %d and %q on stderr\n%s%s", r.code, tc.code, tc.want, r.stdout, r.stderr)
			}
			sameFiles(t, strings.Join(tc.args, " "), before, snapshot(t, root))
		})
	}
	// Empty lists are [] in JSON.
	for _, args := range [][]string{{"source", "list", "--json"}} {
		if out := strings.TrimSpace(mustHotfix(t, root, args...)); out != "[]" {
			t.Errorf("%v on nothing: %s", args, out)
		}
	}
}

// TestVersionFlags runs the real hotfix and msgtrack with --version: each prints its stamped
// version and exits 0; msgtrack does so without waiting for a plugin handshake.
func TestVersionFlags(t *testing.T) {
	r := hotfix(t, layout.Root(t.TempDir()), nil, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "hotfix version ") {
		t.Errorf("hotfix --version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.track, "--version").Output()
	if err != nil || string(out) != "msgtrack version "+stamp.TrackFixedVersion+"\n" {
		t.Errorf("msgtrack --version: %v, %q", err, out)
	}
}

// TestControlSocketOfAnotherUser runs hotfix list as an unprivileged user next to a relay that
// runs as root: the warning names the socket's owner instead of saying relayd is not running.
func TestControlSocketOfAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run hotfix as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv")
	}
	root, _, r := liveSP2(t)
	r.waitTracking(t, "6.5.7638.1")
	if err := os.Chmod(string(root), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(string(root), "hotfix-copy")
	b, err := os.ReadFile(e.hotfix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", bin, "list", "--root", string(root))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "permission denied: it belongs to root; run this as root") {
		t.Errorf("hotfix list as nobody: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "not running") {
		t.Errorf("says the relay is not running:\n%s", out)
	}
}
