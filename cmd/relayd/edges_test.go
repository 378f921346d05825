package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/internal/stamp"
	"relayfix/manifest/record"
	"relayfix/packages/installdb"
	"relayfix/relay/control"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
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

// ctlAs runs `relayd ctl ARGS --root ROOT` with extra environment and returns the exit code,
// stdout and stderr.
func ctlAs(t *testing.T, env []string, root layout.Root, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bins.Relayd, append(append([]string{"ctl"}, args...), "--root", string(root))...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestCtlOffTheHappyPath: an empty queue is [] in JSON; queue times name their zone, with the
// instant's own offset, or are UTC with --utc; a --json failure is one {"error": ...} object on
// stdout; a relayd whose installed file is newer than the running build shows "restart
// pending"; the spool is owner-only, even one an older build left open to all.
func TestCtlOffTheHappyPath(t *testing.T) {
	root := relaytest.ShortRoot(t)
	os.MkdirAll(root.Spool(), 0o755)
	os.Chmod(root.Spool(), 0o755)
	os.MkdirAll(root.Hotfix(), 0o755)
	db := &installdb.DB{Files: []installdb.InstalledFile{{
		File:    record.File{Name: "relayd", Path: "bin/relayd", Version: record.FileVersion{6, 5, 7700, 1}, SHA256: strings.Repeat("0", 64)},
		Package: "SP3", Installed: time.Now().UTC(),
	}}}
	if err := installdb.Save(root, db); err != nil {
		t.Fatal(err)
	}
	p := startRelay(t, root, freeAddr(t), "--tracking=false", "--retry-base", "1h", "--retry-max", "1h")

	if code, out, _ := ctlAs(t, nil, root, "queue", "--json"); code != 0 || out != "[]\n" {
		t.Fatalf("empty queue --json: exit %d %q, want []", code, out)
	}
	_, out, _ := ctlAs(t, nil, root, "status")
	if !strings.Contains(out, "version:     "+stamp.RelaydVersion+" (restart pending: 6.5.7700.1 installed)") {
		t.Errorf("status does not show the pending restart:\n%s", out)
	}
	_, out, _ = ctlAs(t, nil, root, "status", "--json")
	var st control.Status
	var resp control.Response
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Status == nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st = *resp.Status; st.Installed != "6.5.7700.1" {
		t.Errorf("status --json installed %q, want 6.5.7700.1", st.Installed)
	}

	// One message the unreachable next hop defers: it stays queued.
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: 1, Size: 500})
	if res.Acked != 1 {
		t.Fatalf("message not accepted: %+v", res)
	}
	_, out, _ = ctlAs(t, []string{"TZ=America/New_York"}, root, "queue")
	if !strings.Contains(out, " EST") { // December: the zone of that instant, not of today
		t.Errorf("queue times do not name their zone:\n%s", out)
	}
	_, out, _ = ctlAs(t, []string{"TZ=America/New_York"}, root, "queue", "--utc")
	if !strings.Contains(out, " UTC") || strings.Contains(out, " EST") {
		t.Errorf("queue --utc:\n%s", out)
	}
	_, out, _ = ctlAs(t, nil, root, "queue", "--json")
	var q []control.QueueEntry
	if err := json.Unmarshal([]byte(out), &q); err != nil || len(q) != 1 {
		t.Errorf("queue --json: %v %q, want one entry", err, out)
	}

	err := filepath.WalkDir(root.Spool(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	p.Stop(20 * time.Second)
	code, stdout, stderr := ctlAs(t, nil, root, "status", "--json")
	var e struct{ Error string }
	if code != 1 || json.Unmarshal([]byte(stdout), &e) != nil || !strings.Contains(e.Error, "relayd is not running") || !strings.Contains(stderr, "relayd is not running") {
		t.Errorf("--json failure: exit %d stdout %q stderr %q, want exit 1 and {\"error\": ...}", code, stdout, stderr)
	}
}

// TestJSONFailuresHaveOneShape: with --json every failure of ctl and track, a usage error
// included, is one {"error": ...} object on stdout, besides the message on stderr.
func TestJSONFailuresHaveOneShape(t *testing.T) {
	root := relaytest.ShortRoot(t)
	tests := [][]string{
		{"ctl", "restart-component", "--json", "--root", string(root)},
		{"ctl", "queue", "--json", "--root", string(root)},
		{"track", "--json", "--sender", "nobody@example.test", "--root", string(root)},
		{"track", "--json", "--root", string(root)},
	}
	for _, args := range tests {
		code, stdout, stderr := runRelayd(t, args...)
		var e map[string]string
		if code == 0 || json.Unmarshal([]byte(stdout), &e) != nil || len(e) != 1 || e["error"] == "" || stderr == "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want a failure as {\"error\": ...}", args, code, stdout, stderr)
		}
	}
}

// TestVersionAndSubcommandHelp: relayd --version prints its file version; a usage error of a
// subcommand points to that subcommand's help.
func TestVersionAndSubcommandHelp(t *testing.T) {
	code, out, _ := runRelayd(t, "--version")
	if code != 0 || out != "relayd "+stamp.RelaydVersion+"\n" {
		t.Errorf("--version: exit %d %q", code, out)
	}
	code, _, stderr := runRelayd(t, "ctl", "queue", "--bogus")
	if code != 2 || !strings.Contains(stderr, "Run 'relayd ctl queue --help' for usage.") {
		t.Errorf("ctl queue --bogus: exit %d %q", code, stderr)
	}
	code, _, stderr = runRelayd(t, "track", "extra")
	if code != 2 || !strings.Contains(stderr, "Run 'relayd track --help' for usage.") {
		t.Errorf("track extra: exit %d %q", code, stderr)
	}
}

// TestCtlPermissionDeniedNamesTheOwner: a user who may not use the control socket is told so,
// with the socket's owner, not that relayd is not running.
func TestCtlPermissionDeniedNamesTheOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run ctl as another user")
	}
	root := relaytest.ShortRoot(t)
	startRelay(t, root, "", "--tracking=false")
	// The binary and the way to the socket are open to others; the socket itself is not.
	dir, err := os.MkdirTemp("", "rfbin")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "relayd")
	b, _ := os.ReadFile(bins.Relayd)
	os.WriteFile(bin, b, 0o755)
	os.Chmod(string(root), 0o755)
	os.Chmod(filepath.Dir(root.ControlSocket()), 0o755)
	cmd := exec.Command(bin, "ctl", "status", "--root", string(root))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "permission denied: it belongs to root; run this as root") ||
		strings.Contains(string(out), "not running") {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}

// TestShutdownWithTrackingOffWritesNoAckedPosition: with tracking off nothing is acknowledged,
// so the shutdown writes no tracking position, and one it cannot write (as on a full disk)
// is no error.
func TestShutdownWithTrackingOffWritesNoAckedPosition(t *testing.T) {
	root := relaytest.ShortRoot(t)
	// A directory where the position file would go: replacing it fails, as a full disk would.
	acked := filepath.Join(root.Spool(), "tracking", "acked")
	os.MkdirAll(filepath.Join(acked, "x"), 0o700)
	p := startRelay(t, root, "", "--tracking=false")
	if code := p.Stop(20 * time.Second); code != 0 {
		t.Fatalf("relayd exit %d\n%s", code, p.Log())
	}
	if strings.Contains(p.Log(), "relayd: tracking:") || strings.Contains(p.Log(), "acked") {
		t.Errorf("shutdown reports the tracking position:\n%s", p.Log())
	}
	if fi, err := os.Stat(acked); err != nil || !fi.IsDir() {
		t.Errorf("the position was touched: %v", err)
	}
}

// TestTrackPrintsUTCWhateverTheZone: relayd track's times are UTC, as its header says, also
// for an operator whose TZ is elsewhere.
func TestTrackPrintsUTCWhateverTheZone(t *testing.T) {
	root := relaytest.ShortRoot(t)
	at := time.Date(2005, 10, 17, 12, 0, 0, 0, time.UTC)
	w := tracklog.NewWriter(root.TrackingLog(), "relayfix msgtrack test", func() time.Time { return at })
	if err := w.Write([]tracklog.Record{{Time: at, EventID: track.EventReceived, QueueID: "Q1", Sender: "a@example.test"}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cmd := exec.Command(bins.Relayd, "track", "--root", string(root), "--queue-id", "Q1")
	cmd.Env = append(os.Environ(), "TZ=America/New_York")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "TIME (UTC)") || !strings.Contains(string(out), "2005-10-17\t12:00:00.000") {
		t.Fatalf("track under TZ=America/New_York: %v\n%s", err, out)
	}
}
