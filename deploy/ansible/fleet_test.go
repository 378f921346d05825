// Package ansible_test proves the relayfix role and playbooks the way an operator runs them: the
// real ansible-playbook drives the real hotfix binary against a fleet of real relays on this
// machine, each host with its own install root, relayd, next hop and load. The hosts use
// ansible_connection=local, so the test needs nothing but Ansible installed; the playbooks do not
// know the difference from SSH.
package ansible_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/relay/control"
)

// needTool returns the path of an outside tool, or skips the test saying how to install it; under
// CI (env CI set) a missing tool fails the test instead.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pkg := map[string]string{"ansible-playbook": "ansible-core", "ansible-lint": "ansible-lint"}[name]
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed to test the Ansible playbooks (apt-get install %s): %v", name, pkg, err)
		}
		t.Skipf("%s is not installed: apt-get install %s to test the Ansible playbooks (CI requires it)", name, pkg)
	}
	return p
}

var playbooks = []string{"check.yml", "hotfix.yml", "rollback.yml"}

// ansibleEnv keeps Ansible's own files in a temporary directory and its output plain.
func ansibleEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_PIPELINING=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_STDOUT_CALLBACK=default")
}

func TestPlaybooksPassSyntaxCheckAndLint(t *testing.T) {
	t.Parallel() // linting takes a while, and needs none of what the fleet test builds
	playbook := needTool(t, "ansible-playbook")
	env := ansibleEnv(t)
	for _, pb := range playbooks {
		cmd := exec.Command(playbook, "--syntax-check", "-i", "localhost,", pb)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ansible-playbook --syntax-check %s: %v\n%s", pb, err, out)
		}
	}
	lint := needTool(t, "ansible-lint")
	cmd := exec.Command(lint, "--offline", "--strict")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ansible-lint: %v\n%s", err, out)
	}
}

// host is one relay of the fleet.
type host struct {
	name  string
	root  layout.Root
	sink  *smtpload.Sink
	relay *relaytest.Relayd
	load  *load
}

// fleet is the relays, the packages and what it takes to run the playbooks against them.
type fleet struct {
	hotfix    string // the hotfix binary every host uses
	playbook  string // ansible-playbook
	inventory string
	env       []string
	pub       string // the key the packages are signed with
	kb, bad   string // KB910618.hfx and KB999001.hfx, a tracking build that exits at start
	hosts     []*host
}

// newFleet builds the binaries, packs SP2, KB910618 and a broken hotfix with a key made now,
// publishes SP2 and KB910618 in a repository served on loopback, and starts n relays on SP2, each
// with its own root, loopback port and counting next hop. The inventory names the repository as
// relayfix_source, which hotfix.yml adds to a host that does not have it yet.
func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	f := &fleet{playbook: needTool(t, "ansible-playbook"), env: ansibleEnv(t)}
	dir := t.TempDir()
	bins, err := relaytest.Build(context.Background(), filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.hotfix = bins.Hotfix
	sp2, kb, bad := f.packPackages(t, dir, bins)
	f.kb, f.bad = kb, bad
	repo := filepath.Join(dir, "repo")
	f.run(t, "", "repo", "init", repo)
	f.run(t, "", "repo", "add", repo, sp2, kb, "--pubkey", f.pub)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(repo, "repository"))))
	t.Cleanup(srv.Close)

	var inv strings.Builder
	inv.WriteString("[relays]\n")
	for i := range n {
		h := &host{name: fmt.Sprintf("relay%d", i+1), root: relaytest.ShortRoot(t)}
		f.run(t, h.root, "apply", sp2, "--pubkey", f.pub)
		if h.sink, err = smtpload.NewSink("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.sink.Close() }) // registered first, so it runs after relayd has stopped
		h.relay = relaytest.StartRelayd(t, h.root.Bin("relayd"), h.root, h.sink.Addr(),
			"--allow", "127.0.0.1/32", "--track-restart-max", "1s")
		fmt.Fprintf(&inv, "%s relayfix_root=%s\n", h.name, h.root)
		f.hosts = append(f.hosts, h)
	}
	fmt.Fprintf(&inv, "\n[relays:vars]\nansible_connection=local\nansible_python_interpreter={{ ansible_playbook_python }}\nrelayfix_hotfix=%s\nrelayfix_source=%s\nrelayfix_source_trust=%s\n",
		f.hotfix, srv.URL, filepath.Join(repo, "repository", "1.root.json"))
	f.inventory = filepath.Join(dir, "inventory.ini")
	if err := os.WriteFile(f.inventory, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// packPackages does what `make packages` does, with the hotfix binary under test, and adds
// KB999001: the broken tracking build, in a package that is valid in every other way.
func (f *fleet) packPackages(t *testing.T, dir string, bins relaytest.Binaries) (sp2, kb, bad string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	packaging := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "packaging")
	key := filepath.Join(dir, "demo")
	f.run(t, "", "keygen", "-o", key)
	f.pub = key + ".pub"

	tmpl, err := os.ReadFile(filepath.Join(packaging, "KB910618.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(tmpl, &m); err != nil {
		t.Fatal(err)
	}
	m["id"], m["title"] = "KB999001", "A tracking build that exits at start"
	m["files"].([]any)[0].(map[string]any)["version"] = relaytest.TrackBrokenVersion
	badTmpl := filepath.Join(dir, "KB999001.json")
	b, _ := json.Marshal(m)
	if err := os.WriteFile(badTmpl, b, 0o644); err != nil {
		t.Fatal(err)
	}

	sp2, kb, bad = filepath.Join(dir, "SP2.hfx"), filepath.Join(dir, "KB910618.hfx"), filepath.Join(dir, "KB999001.hfx")
	f.run(t, "", "pack", "--manifest", filepath.Join(packaging, "SP2.json"), "--key", key+".key",
		"--file", "bin/relayd="+bins.Relayd, "--file", "bin/msgtrack="+bins.TrackPrefix, "--date", "2005-10-17T12:00:00Z", "-o", sp2)
	f.run(t, "", "pack", "--manifest", filepath.Join(packaging, "KB910618.json"), "--key", key+".key",
		"--file", "bin/msgtrack="+bins.TrackFixed, "--date", "2006-02-14T03:36:00Z", "-o", kb)
	f.run(t, "", "pack", "--manifest", badTmpl, "--key", key+".key",
		"--file", "bin/msgtrack="+bins.TrackBroken, "--date", "2006-02-14T03:36:00Z", "-o", bad)
	return sp2, kb, bad
}

// run runs hotfix (on root, unless it is empty) and returns its stdout; it fails the test unless
// hotfix exits 0.
func (f *fleet) run(t *testing.T, root layout.Root, args ...string) string {
	t.Helper()
	if root != "" {
		args = append(args, "--root", string(root))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.hotfix, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hotfix %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// play runs a playbook against the fleet and returns its output; it fails the test unless
// ansible-playbook exits with code.
func (f *fleet) play(t *testing.T, code int, playbook string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, f.playbook, append([]string{"-i", f.inventory, playbook}, args...)...)
	cmd.Env = f.env
	out, err := cmd.CombinedOutput()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ansible-playbook %s: %v", playbook, err)
	}
	t.Logf("ansible-playbook %s %s: exit %d in %v", playbook, strings.Join(args, " "), got, time.Since(start).Round(time.Millisecond))
	if got != code {
		t.Fatalf("ansible-playbook %s %s: exit %d, want %d\n%s", playbook, strings.Join(args, " "), got, code, out)
	}
	return string(out)
}

// recapLine matches a host's line of the PLAY RECAP.
var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// recap returns each host's changed and failed counts from the PLAY RECAP.
func recap(out string) map[string][2]int {
	r := map[string][2]int{}
	for _, m := range recapLine.FindAllStringSubmatch(out, -1) {
		changed, _ := strconv.Atoi(m[3])
		failed, _ := strconv.Atoi(m[5])
		r[m[1]] = [2]int{changed, failed}
	}
	return r
}

// installed returns the root's files as `hotfix list --json` gives them, and msgtrack's version.
func (f *fleet) installed(t *testing.T, h *host) (rows []map[string]any, msgtrack string) {
	t.Helper()
	out := f.run(t, h.root, "list", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%s: list --json: %v\n%s", h.name, err, out)
	}
	for _, r := range rows {
		if r["path"] == "bin/msgtrack" {
			msgtrack, _ = r["version"].(string)
		}
	}
	return rows, msgtrack
}

// wantRecap fails the test unless the PLAY RECAP of a run says changed=changed failed=0 for every
// host.
func (f *fleet) wantRecap(t *testing.T, run, out string, changed int) {
	t.Helper()
	rc := recap(out)
	for _, h := range f.hosts {
		if r, ok := rc[h.name]; !ok || r != [2]int{changed, 0} {
			t.Errorf("%s: %s: recap changed=%d failed=%d (listed %v), want changed=%d failed=0\n%s", h.name, run, r[0], r[1], ok, changed, out)
		}
	}
}

// wantMsgtrack fails the test unless every host lists msgtrack at version and its relay runs
// that build, in a state ok accepts.
func (f *fleet) wantMsgtrack(t *testing.T, version string, ok func(health string) bool) {
	t.Helper()
	for _, h := range f.hosts {
		if _, v := f.installed(t, h); v != version {
			t.Errorf("%s: msgtrack %s is installed, want %s", h.name, v, version)
		}
		tracking(t, h, version, ok)
	}
}

// checkReport is what `hotfix check --json` says of a root, as far as the fleet table shows it.
type checkReport struct {
	Product  string
	Packages []struct{ ID, State string }
	Problems []checkProblem
}

type checkProblem struct {
	Program, Build, Signature string
	FixedBy                   string `json:"fixed_by"`
}

// key names a known problem apart from its count, which grows under load.
func (p checkProblem) key() string {
	return fmt.Sprintf("%s %s crashed (%s): %s fixes this", p.Program, p.Build, p.Signature, p.FixedBy)
}

// problemLine is a known problem as the fleet table says it.
var problemLine = regexp.MustCompile(`^(\S+ \S+ crashed) \d+ times? (\(.*\): \S+ fixes this) `)

// lineKey is the key of the problem a line of the fleet table says, or the line itself if it
// says none.
func lineKey(line string) string {
	m := problemLine.FindStringSubmatch(line)
	if m == nil {
		return line
	}
	return m[1] + " " + m[2]
}

func (f *fleet) check(t *testing.T, h *host) checkReport {
	t.Helper()
	var r checkReport
	out := f.run(t, h.root, "check", "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s: check --json: %v\n%s", h.name, err, out)
	}
	return r
}

type historyEntry struct {
	Package, Action, Result string
	Start, End              time.Time
}

func (f *fleet) history(t *testing.T, h *host) []historyEntry {
	t.Helper()
	var hist []historyEntry
	out := f.run(t, h.root, "history", "--json")
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("%s: history --json: %v\n%s", h.name, err, out)
	}
	return hist
}

// tracking waits until the host's relay runs its tracking component at version, in a state ok
// accepts, and fails the test if it does not within 15 s.
func tracking(t *testing.T, h *host, version string, ok func(health string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last control.ComponentStatus
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := h.relay.Ctl.Status(ctx)
		cancel()
		if err == nil {
			if c, found := st.Component("tracking"); found {
				last = c
				if c.Version == version && ok(c.Health) {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: tracking does not run %s; last %+v", h.name, version, last)
}

func healthy(h string) bool { return h == control.HealthHealthy }

// running accepts the service pack's tracking build between a crash and its restart, or crash-looping: under load
// it crashes now and then by design (the KB 910618 defect), and the relay restarts it from the
// installed file.
func running(h string) bool {
	return h == control.HealthHealthy || h == control.HealthRestarting || h == control.HealthStarting || h == control.HealthCrashLooping
}

// load sends mail through one relay in the background until stopped, and then returns what the
// relay acknowledged.
type load struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    *smtpload.LoadResult
	err    error
}

func startLoad(addr string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.res, l.err = smtpload.Load(ctx, smtpload.LoadOptions{Addr: addr, N: 5000, Concurrency: 2, Size: 1024,
			Rate: 10, Duration: 3 * time.Minute})
	}()
	return l
}

// stopLoad stops the load on every host and fails the test for every message a relay
// acknowledged that did not reach its next hop.
func (f *fleet) stopLoad(t *testing.T) {
	t.Helper()
	for _, h := range f.hosts {
		h.load.cancel()
		<-h.load.done
		if h.load.err != nil {
			t.Fatalf("%s: load: %v", h.name, h.load.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		tally := h.sink.WaitFor(ctx, h.load.res.Acks)
		cancel()
		t.Logf("%s: load sent %d, %s", h.name, h.load.res.Sent, tally)
		if tally.Lost != 0 || tally.Acked == 0 || tally.Duplicates != 0 {
			t.Errorf("%s: mail lost or duplicated: %s (first lost %v)", h.name, tally, tally.LostSeqs[:min(5, len(tally.LostSeqs))])
		}
	}
}

func TestFleetRolloutUnderLoad(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 4)
	for _, h := range f.hosts {
		tracking(t, h, "6.5.7638.1", healthy)
		h.load = startLoad(h.relay.Addr)
	}
	stopped := false
	defer func() {
		if !stopped {
			f.stopLoad(t)
		}
	}()

	// --check: hotfix apply --dry-run on every host (in one batch of all four, through
	// relayfix_batches), each would change, and nothing does.
	out := f.play(t, 0, "hotfix.yml", "--check", "-e", "relayfix_package="+f.kb, "-e", `{"relayfix_batches": ["100%"]}`)
	if n := strings.Count(out, "PLAY [Roll out a relayfix hotfix]"); n != 1 {
		t.Errorf("--check with relayfix_batches [\"100%%\"] ran %d batches, want 1\n%s", n, out)
	}
	f.wantRecap(t, "--check", out, 1)
	for _, h := range f.hosts {
		if !strings.Contains(out, h.name+": would apply KB910618: bin/msgtrack 6.5.7638.1 -> 6.5.7651.45") {
			t.Errorf("%s: --check does not say what would change\n%s", h.name, out)
		}
		if _, v := f.installed(t, h); v != "6.5.7638.1" || len(f.history(t, h)) != 1 {
			t.Errorf("%s: --check changed the host: msgtrack %s, history %+v", h.name, v, f.history(t, h))
		}
	}

	// The rollout, by id from the repository: a canary, then 25% (one host), then the rest. Each
	// host first gains the inventory's source (one change), then the package (another).
	out = f.play(t, 0, "hotfix.yml", "-e", "relayfix_package=KB910618")
	if n := strings.Count(out, "PLAY [Roll out a relayfix hotfix]"); n != 3 {
		t.Errorf("rollout ran %d batches, want 3 (1, 25%%, 100%%)\n%s", n, out)
	}
	f.wantRecap(t, "rollout", out, 2)
	for _, h := range f.hosts {
		if !strings.Contains(out, h.name+": applied KB910618 (committed): bin/msgtrack 6.5.7638.1 -> 6.5.7651.45") {
			t.Errorf("%s: the rollout by id does not say what it applied\n%s", h.name, out)
		}
	}
	f.wantMsgtrack(t, "6.5.7651.45", healthy)
	applied := map[string]historyEntry{}
	for _, h := range f.hosts {
		hist := f.history(t, h)
		last := hist[len(hist)-1]
		if last.Package != "KB910618" || last.Action != "apply" || last.Result != "committed" {
			t.Errorf("%s: last transaction %+v", h.name, last)
		}
		applied[h.name] = last
	}
	// Batch order from the hosts' own records: each batch starts after the one before ended.
	r1, r2, r3, r4 := applied["relay1"], applied["relay2"], applied["relay3"], applied["relay4"]
	t.Logf("applies: relay1 %s-%s, relay2 %s-%s, relay3 %s-%s, relay4 %s-%s",
		r1.Start.Format(time.StampMilli), r1.End.Format(time.StampMilli), r2.Start.Format(time.StampMilli), r2.End.Format(time.StampMilli),
		r3.Start.Format(time.StampMilli), r3.End.Format(time.StampMilli), r4.Start.Format(time.StampMilli), r4.End.Format(time.StampMilli))
	if !r1.End.Before(r2.Start) || !r2.End.Before(r3.Start) || !r2.End.Before(r4.Start) {
		t.Errorf("applies out of batch order [relay1] [relay2] [relay3 relay4]: %+v", applied)
	}

	// A build that fails its health check: the canary takes it, hotfix puts the old build back,
	// the play fails naming the canary, and no later batch starts.
	before := map[string][]map[string]any{}
	for _, h := range f.hosts {
		before[h.name], _ = f.installed(t, h)
	}
	out = f.play(t, 2, "hotfix.yml", "-e", "relayfix_package="+f.bad, "-e", "relayfix_health_timeout=3s")
	if !regexp.MustCompile(`fatal: \[relay1\]: FAILED! => .*relay1: hotfix apply \S*KB999001.hfx failed \(exit 1\): KB999001: tracking did not become healthy on 6\.5\.7651\.46.*the previous build was put back`).MatchString(out) {
		t.Errorf("the play does not name the canary and why it failed\n%s", out)
	}
	if n := strings.Count(out, "PLAY [Roll out a relayfix hotfix]"); n != 1 {
		t.Errorf("a failed canary: %d batches ran, want 1\n%s", n, out)
	}
	if r := recap(out)["relay1"]; r[1] != 1 {
		t.Errorf("relay1: recap failed=%d, want 1\n%s", r[1], out)
	}
	tracking(t, f.hosts[0], "6.5.7651.45", healthy)
	for i, h := range f.hosts {
		rows, _ := f.installed(t, h)
		if !reflect.DeepEqual(rows, before[h.name]) {
			t.Errorf("%s: installed files changed by the failed rollout:\n%v\nwas\n%v", h.name, rows, before[h.name])
		}
		hist := f.history(t, h)
		last := hist[len(hist)-1]
		switch {
		case i == 0 && (last.Package != "KB999001" || last.Result != "rolled-back"):
			t.Errorf("%s: the canary's last transaction is %+v, want KB999001 rolled back", h.name, last)
		case i > 0 && last.Package != "KB910618":
			t.Errorf("%s: a host after the canary was touched: %+v", h.name, last)
		}
	}

	// A second run changes nothing anywhere: the hosts have the source and the package.
	out = f.play(t, 0, "hotfix.yml", "-e", "relayfix_package=KB910618")
	f.wantRecap(t, "second run", out, 0)
	for _, h := range f.hosts {
		if !strings.Contains(out, h.name+": KB910618 is already installed; nothing to do") {
			t.Errorf("%s: the second run does not say it had nothing to do\n%s", h.name, out)
		}
	}

	// rollback.yml --check says what would go back and changes nothing.
	out = f.play(t, 0, "rollback.yml", "--check", "-e", "relayfix_component=KB910618", "-e", `{"relayfix_batches": ["100%"]}`)
	f.wantRecap(t, "rollback --check", out, 1)
	for _, h := range f.hosts {
		if !strings.Contains(out, h.name+": would roll back KB910618: bin/msgtrack") {
			t.Errorf("%s: rollback --check does not say what would go back\n%s", h.name, out)
		}
	}
	f.wantMsgtrack(t, "6.5.7651.45", healthy)

	// rollback.yml: every host back on the service pack's build, live.
	out = f.play(t, 0, "rollback.yml", "-e", "relayfix_component=KB910618")
	f.wantRecap(t, "rollback", out, 1)
	f.wantMsgtrack(t, "6.5.7638.1", running)
	// ...and run again it has nothing left to do.
	out = f.play(t, 0, "rollback.yml", "-e", "relayfix_component=KB910618", "-e", `{"relayfix_batches": ["100%"]}`)
	f.wantRecap(t, "second rollback", out, 0)

	// max_fail_percentage 0: one failed host in a batch of two stops the rollout, even though
	// the other host of the batch succeeded. relay2's inventory names a key that did not sign
	// the package (hotfix refuses it and changes nothing); relay1's names the right one.
	dir := t.TempDir()
	f.run(t, "", "keygen", "-o", filepath.Join(dir, "other"))
	keys := filepath.Join(dir, "keys.ini")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("[relays]\nrelay1 relayfix_pubkey=%s\nrelay2 relayfix_pubkey=%s\n",
		f.pub, filepath.Join(dir, "other.pub"))), 0o644); err != nil {
		t.Fatal(err)
	}
	out = f.play(t, 2, "hotfix.yml", "-i", keys, "-e", "relayfix_package="+f.kb, "-e", `{"relayfix_batches": [2, "100%"]}`)
	if !regexp.MustCompile(`fatal: \[relay2\]: FAILED! => .*relay2: hotfix apply \S*KB910618.hfx failed \(exit 1\): .*signed by key \w+, which is not trusted`).MatchString(out) {
		t.Errorf("the play does not name relay2 and why it failed\n%s", out)
	}
	if rc := recap(out); rc["relay1"] != [2]int{1, 0} || rc["relay2"] != [2]int{0, 1} {
		t.Errorf("batch of two: recap %v, want relay1 changed, relay2 failed\n%s", rc, out)
	}
	for i, h := range f.hosts {
		want := map[bool]string{true: "6.5.7651.45", false: "6.5.7638.1"}[i == 0]
		if _, v := f.installed(t, h); v != want {
			t.Errorf("%s: after a rollout stopped in its first batch msgtrack is %s, want %s", h.name, v, want)
		}
		if hist := f.history(t, h); i > 0 && hist[len(hist)-1].Action != "rollback" {
			t.Errorf("%s: a rollout stopped before this host touched it: %+v", h.name, hist[len(hist)-1])
		}
	}
	tracking(t, f.hosts[0], "6.5.7651.45", healthy)

	// check.yml: the fleet table says what each host's hotfix list and hotfix check --json say.
	// Crash records only accumulate under load, so the problems the table shows must include
	// those check saw before the play and be among those it sees after.
	checked := map[string]checkReport{}
	for _, h := range f.hosts {
		checked[h.name] = f.check(t, h)
	}
	report := filepath.Join(t.TempDir(), "fleet.json")
	out = f.play(t, 0, "check.yml", "-e", "relayfix_check_report="+report)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var states map[string]struct {
		Product  string
		Packages []struct{ ID, State, Reason string }
		Files    []map[string]any
		Problems []string
	}
	if err := json.Unmarshal(b, &states); err != nil {
		t.Fatalf("fleet report: %v\n%s", err, b)
	}
	for _, h := range f.hosts {
		rows, msgtrack := f.installed(t, h)
		after := f.check(t, h)
		st, ok := states[h.name]
		if !ok || !reflect.DeepEqual(st.Files, rows) {
			t.Errorf("%s: the fleet report's files\n%v\ndiffer from hotfix list\n%v", h.name, st.Files, rows)
		}
		var pkgs []string
		for _, p := range after.Packages {
			pkgs = append(pkgs, p.ID+" "+p.State)
		}
		var got []string
		for _, p := range st.Packages {
			got = append(got, p.ID+" "+p.State)
		}
		if st.Product != after.Product || !reflect.DeepEqual(got, pkgs) {
			t.Errorf("%s: the fleet report says %q %v, hotfix check --json %q %v", h.name, st.Product, got, after.Product, pkgs)
		}
		kb := "applicable"
		if msgtrack == "6.5.7651.45" {
			kb = "installed"
		}
		if want := []string{"KB910618 " + kb, "SP2 installed"}; !reflect.DeepEqual(pkgs, want) {
			t.Errorf("%s: hotfix check --json says %v, want %v with msgtrack %s", h.name, pkgs, want, msgtrack)
		}
		seen := map[string]bool{}
		for _, p := range st.Problems {
			seen[lineKey(p)] = true
		}
		for _, p := range checked[h.name].Problems {
			if !seen[p.key()] {
				t.Errorf("%s: hotfix check saw %q before the play, the fleet report only %q", h.name, p.key(), st.Problems)
			}
		}
		for k := range seen {
			if !slices.ContainsFunc(after.Problems, func(p checkProblem) bool { return p.key() == k }) {
				t.Errorf("%s: the fleet report shows %q, which hotfix check does not: %+v", h.name, k, after.Problems)
			}
		}
		problems := `none seen`
		if len(st.Problems) > 0 {
			problems = `msgtrack 6\.5\.7638\.1 crashed \d+ times? \(nil pointer dereference in relayfix/relay/trackplugin\.recordsFor\): KB910618 fixes this \S+ hotfix apply KB910618`
		}
		t.Logf("%s: %s, %v, problems %q", h.name, st.Product, got, st.Problems)
		want := regexp.MustCompile(`"` + h.name + `\s+service pack 2 \(relayfix 6\.5\.7638\)\s+KB910618 ` + kb + `, SP2 installed\s+msgtrack ` +
			regexp.QuoteMeta(msgtrack) + `, relayd 6\.5\.7638\.1\s+` + problems + `"`)
		if !want.MatchString(out) {
			t.Errorf("%s: no table row %s in\n%s", h.name, want, out)
		}
	}

	stopped = true
	f.stopLoad(t)
}
