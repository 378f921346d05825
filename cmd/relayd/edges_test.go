package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"relayfix/internal/relaytest"
)

// tree returns every entry under dir with its mode and, for a file, its content: two trees are
// equal only if nothing was created, removed, changed or re-permissioned.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if before[k] != after[k] {
			t.Errorf("%s changed the root: %s: %.60q -> %.60q", what, k, before[k], after[k])
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s removed %s from the root", what, k)
		}
	}
}

// runRelayd runs relayd with args and returns its exit code, stdout and stderr.
func runRelayd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	// A relayd that wrongly starts is stopped rather than left to hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Relayd, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestSettingsAreValidatedNotDefaulted: a setting out of range, on the command line or in
// relayd.json, is refused with exit 2 naming where it was written, and relayd starts nothing:
// the root is the same byte for byte. A missing escalation program and a root that is a file
// are problems of the install, exit 1.
func TestSettingsAreValidatedNotDefaulted(t *testing.T) {
	tests := []struct {
		name string
		args []string
		file string // relayd.json
		code int
		want string // in stderr
	}{
		{"workers -1", []string{"--workers", "-1"}, "", 2, "relayd: --workers: must be at least 1, not -1\n"},
		{"workers 0", []string{"--workers", "0"}, "", 2, "--workers: must be at least 1, not 0"},
		{"max-size -1", []string{"--max-size", "-1"}, "", 2, "--max-size: must be at least 1"},
		{"max-recipients 0", []string{"--max-recipients", "0"}, "", 2, "--max-recipients: must be at least 1"},
		{"max-conns -5", []string{"--max-conns", "-5"}, "", 2, "--max-conns: must be at least 1, not -5"},
		{"lifetime -1h", []string{"--lifetime", "-1h"}, "", 2, "--lifetime: must be longer than 0"},
		{"read-timeout 0s", []string{"--read-timeout", "0s"}, "", 2, "--read-timeout: must be longer than 0, not 0s"},
		{"retry-max below retry-base", []string{"--retry-base", "2m", "--retry-max", "1m"}, "", 2, "--retry-max: 1m0s is shorter than --retry-base"},
		{"track-escalate-after 0", []string{"--track-escalate-after", "0"}, "", 2, "--track-escalate-after: must be at least 1"},
		{"listen nonsense", []string{"--listen", "nonsense"}, "", 2, `--listen: "nonsense" is not host:port`},
		{"next-hop nohost", []string{"--next-hop", "nohost"}, "", 2, `--next-hop: "nohost" is not host:port`},
		{"next-hop port 0", []string{"--next-hop", "127.0.0.1:0"}, "", 2, `--next-hop: "127.0.0.1:0": port 0`},
		{"allow flag", []string{"--allow", "10.0.0.0/33"}, "", 2, `--allow: "10.0.0.0/33" is not a network`},
		{"workers in the file", nil, `{"workers": -3}`, 2, `relayd.json "workers": must be at least 1, not -3`},
		{"listen as a number", nil, "{\n  \"listen\": 4103\n}", 2, `relayd.json:2:3: "listen": want a string`},
		{"allow in the file", nil, `{"allow": ["10.0.0.0/8", "bogus"]}`, 2, `relayd.json "allow": "bogus" is not a network`},
		{"syntax error", nil, "{\n  \"workers\": 3\n  \"listen\": \"x:1\"\n}", 2, "relayd.json:3:3: not valid JSON"},
		{"no go internals", nil, `{"max-size": 1.5}`, 2, `relayd.json:1:2: "max-size": want a whole number`},
		{"duration in the file", nil, `{"lifetime": "-1h"}`, 2, `relayd.json "lifetime": must be longer than 0`},
		{"flag wins over the file", []string{"--workers", "0"}, `{"workers": 4}`, 2, "--workers: must be at least 1, not 0"},
		{"escalation without hotfix", []string{"--track-escalate", "rollback"}, "", 1, "bin/hotfix: no such file or directory; install it there or name another with --track-hotfix"},
		{"escalation program missing", []string{"--track-escalate", "run", "--track-escalate-program", "/no/such/program"}, "", 1, "needs /no/such/program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := relaytest.ShortRoot(t)
			os.MkdirAll(filepath.Join(string(root), "bin"), 0o755)
			os.WriteFile(filepath.Join(string(root), "bin", "msgtrack"), []byte("plugin"), 0o755)
			if tt.file != "" {
				os.WriteFile(root.Config(), []byte(tt.file), 0o644)
			}
			before := tree(t, string(root))
			args := []string{"--root", string(root)}
			if !strings.Contains(tt.file, "listen") {
				args = append(args, "--listen", "127.0.0.1:0")
			}
			args = append(args, tt.args...)
			code, stdout, stderr := runRelayd(t, args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.code, tt.want)
			}
			if strings.Contains(stderr, "strconv") || strings.Contains(stderr, "json: ") {
				t.Errorf("stderr shows Go internals: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			sameTree(t, tt.name, before, tree(t, string(root)))
		})
	}
}

// TestRootThatIsAFile: a root that is not a directory is a problem of the machine (exit 1), not
// a mistake on the command line.
func TestRootThatIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "root")
	os.WriteFile(file, []byte("x"), 0o644)
	code, _, stderr := runRelayd(t, "--root", file, "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("install root %s is not a directory", file)) {
		t.Fatalf("exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Fatalf("root file changed: %q", b)
	}
}
