package store

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/packages/installdb"
	"relayfix/verifier"
)

func newStore(t *testing.T) (*Store, *fakeRelay) {
	t.Helper()
	root := layout.Root(t.TempDir())
	fr := &fakeRelay{root: root, bad: map[string]bool{}}
	return &Store{Root: root, Services: fr, HealthTimeout: 2 * time.Second}, fr
}

func mustApply(t *testing.T, s *Store, open OpenFunc) *Result {
	t.Helper()
	res, _, err := s.Apply(context.Background(), open, false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func TestApplyServicePackThenHotfixThenRollback(t *testing.T) {
	s, fr := newStore(t)
	ctx := context.Background()
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	prod, err := installdb.LoadProduct(s.Root)
	if err != nil || prod == nil || prod.ServicePack != 2 || prod.Version != "6.5.7638" {
		t.Fatalf("product after SP2 = %+v, %v", prod, err)
	}
	for _, d := range []string{"spool", "log/tracking", "run", "hotfix/backup"} {
		if fi, err := os.Stat(s.Root.Join(d)); err != nil || !fi.IsDir() {
			t.Errorf("folder %s missing: %v", d, err)
		}
	}
	fi, err := os.Stat(s.Root.Bin("msgtrack"))
	if err != nil || !fi.ModTime().Equal(spDate) || fi.Mode().Perm() != 0o755 {
		t.Fatalf("msgtrack after SP2: %v mtime %v", err, fi.ModTime())
	}
	checkConsistent(t, s.Root)

	res := mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
	if len(res.Services) != 1 || res.Services[0].Version != "6.5.7651.45" || res.Services[0].Health != "healthy" {
		t.Fatalf("services after KB = %+v", res.Services)
	}
	if fr.running != "6.5.7651.45" {
		t.Fatalf("relay runs %s", fr.running)
	}
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7651.45" {
		t.Fatalf("msgtrack installed %s", v)
	}
	if fi, _ := os.Stat(s.Root.Bin("msgtrack")); !fi.ModTime().Equal(kbDate) {
		t.Errorf("msgtrack mtime %v, want the manifest date %v", fi.ModTime(), kbDate)
	}
	checks, err := s.VerifyRoot(ctx)
	if err != nil || Drifted(checks) != 0 || len(checks) != 2 {
		t.Fatalf("verify root: %v %+v", err, checks)
	}
	if ents, _ := os.ReadDir(s.Root.Backups()); len(ents) != 1 {
		t.Errorf("%d backup folders after one replacing apply, want 1", len(ents))
	}

	if _, err := s.Rollback(ctx, "msgtrack"); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("after rollback msgtrack is %s", v)
	}
	if fr.running != "6.5.7638.1" {
		t.Fatalf("after rollback the relay runs %s", fr.running)
	}
	db := checkConsistent(t, s.Root)
	if _, ok := db.Package("KB910618"); ok {
		t.Error("KB910618 still recorded as installed after its only file was rolled back")
	}
	prod, _ = installdb.LoadProduct(s.Root)
	if strings.Contains(strings.Join(prod.Packages, ","), "KB910618") {
		t.Errorf("product still lists KB910618: %v", prod.Packages)
	}
	_, err = s.Rollback(ctx, "msgtrack")
	var ne *NothingEarlierError
	if !errors.As(err, &ne) || err.Error() != "msgtrack 6.5.7638.1 was installed by SP2; there is nothing earlier to roll back to" {
		t.Fatalf("second rollback: %v", err)
	}
	// Going forward again after a rollback is allowed: the high-water mark refuses only older builds.
	mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
	if _, err := s.Rollback(ctx, "KB910618"); err != nil {
		t.Fatalf("rollback by hotfix id: %v", err)
	}
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7638.1" {
		t.Fatalf("after rollback of KB910618 msgtrack is %s", v)
	}
	checkConsistent(t, s.Root)
	// Nothing earlier than the service pack build is left to restore, so no backup is kept.
	if ents, _ := os.ReadDir(s.Root.Backups()); len(ents) != 0 {
		t.Errorf("%d backup folders kept with nothing to roll back to", len(ents))
	}

	h, err := LoadHistory(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, e.Action+":"+e.Package+":"+e.Result)
	}
	want := "apply:SP2:committed apply:KB910618:committed rollback:msgtrack:committed apply:KB910618:committed rollback:KB910618:committed"
	if strings.Join(got, " ") != want {
		t.Errorf("history\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestApplyRefusals(t *testing.T) {
	ctx := context.Background()
	sp2 := func(t *testing.T, s *Store) { mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1"))) }
	tests := []struct {
		name    string
		before  func(t *testing.T, s *Store)
		pkg     func(t *testing.T) OpenFunc
		wantErr string         // the whole message
		unmet   verifier.Unmet // the prerequisite refused; empty for a downgrade
	}{
		{
			name:    "hotfix on a bare root",
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910618", "6.5.7651.45")) },
			wantErr: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has nothing installed",
			unmet:   verifier.UnmetProduct,
		},
		{
			name:    "hotfix on service pack 1",
			before:  func(t *testing.T, s *Store) { mustApply(t, s, opener(t, sp(t, 1, "6.5.7226", "6.5.7226.1"))) },
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910618", "6.5.7651.45")) },
			wantErr: "KB910618 requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 1 (relayfix 6.5.7226)",
			unmet:   verifier.UnmetServicePack,
		},
		{
			name: "superseded hotfix",
			before: func(t *testing.T, s *Store) {
				sp2(t, s)
				mustApply(t, s, opener(t, kb(t, "KB999999", "6.5.7700.1", "KB910618")))
			},
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910618", "6.5.7651.45")) },
			wantErr: "KB910618 is superseded by the installed KB999999; applying it would go backwards",
			unmet:   verifier.UnmetSuperseded,
		},
		{
			name: "older file than installed",
			before: func(t *testing.T, s *Store) {
				sp2(t, s)
				mustApply(t, s, opener(t, kb(t, "KB999999", "6.5.7700.1")))
			},
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910618", "6.5.7651.45")) },
			wantErr: "KB910618: bin/msgtrack 6.5.7651.45 is older than 6.5.7700.1, the newest installed there; only 'hotfix rollback' goes back",
		},
		{
			name: "hotfix already installed",
			before: func(t *testing.T, s *Store) {
				sp2(t, s)
				mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
			},
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910618", "6.5.7651.45")) },
			wantErr: "KB910618 is already installed",
			unmet:   verifier.UnmetInstalled,
		},
		{
			// Not recorded under its id, but it would change no file.
			name: "same builds under another id",
			before: func(t *testing.T, s *Store) {
				sp2(t, s)
				mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
			},
			pkg:     func(t *testing.T) OpenFunc { return opener(t, kb(t, "KB910619", "6.5.7651.45")) },
			wantErr: "KB910619 is already installed",
			unmet:   verifier.UnmetInstalled,
		},
		{
			name:    "service pack applied again",
			before:  sp2,
			pkg:     func(t *testing.T) OpenFunc { return opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")) },
			wantErr: "SP2 is already installed",
			unmet:   verifier.UnmetInstalled,
		},
		{
			// A hotfix replaced one of its files since: the service pack is installed all the
			// same, and applying it again would take the hotfix back (only rollback goes back).
			name: "service pack applied again over a hotfix",
			before: func(t *testing.T, s *Store) {
				sp2(t, s)
				mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
			},
			pkg:     func(t *testing.T) OpenFunc { return opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")) },
			wantErr: "SP2 is already installed",
			unmet:   verifier.UnmetInstalled,
		},
		{
			// Another service pack at the installed level does not raise it.
			name:   "service pack at the installed level",
			before: sp2,
			pkg: func(t *testing.T) OpenFunc {
				m := sp(t, 2, "6.5.7638", "6.5.7638.2")
				m.ID = "SP2a"
				return opener(t, m)
			},
			wantErr: "SP2a would not raise the installed level: it installs service pack 2 (relayfix 6.5.7638); this root has service pack 2 (relayfix 6.5.7638)",
			unmet:   verifier.UnmetLevel,
		},
		{
			name:    "lower service pack",
			before:  sp2,
			pkg:     func(t *testing.T) OpenFunc { return opener(t, sp(t, 1, "6.5.7226", "6.5.7226.1")) },
			wantErr: "SP1 would not raise the installed level: it installs service pack 1 (relayfix 6.5.7226); this root has service pack 2 (relayfix 6.5.7638)",
			unmet:   verifier.UnmetLevel,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			if tt.before != nil {
				tt.before(t, s)
			}
			dbBefore, _ := os.ReadFile(s.Root.InstalledDB())
			_, plan, err := s.Apply(ctx, tt.pkg(t), true)
			if err == nil || plan == nil || plan.Ready || plan.Prerequisites != tt.wantErr {
				t.Fatalf("dry run: plan %+v, err %v", plan, err)
			}
			_, _, err = s.Apply(ctx, tt.pkg(t), false)
			if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) {
				t.Fatalf("apply error\n got %v\nwant %s", err, tt.wantErr)
			}
			var pe *verifier.PrerequisiteError
			var de *DowngradeError
			switch {
			case tt.unmet == "" && !errors.As(err, &de):
				t.Errorf("apply error is a %T, want a *DowngradeError", err)
			case tt.unmet != "" && (!errors.As(err, &pe) || pe.Unmet != tt.unmet):
				t.Errorf("apply error is a %T (%+v), want a *verifier.PrerequisiteError, unmet %q", err, pe, tt.unmet)
			}
			dbAfter, _ := os.ReadFile(s.Root.InstalledDB())
			if string(dbBefore) != string(dbAfter) {
				t.Error("a refused apply changed the database")
			}
			if ents, _ := os.ReadDir(s.Root.Staging()); len(ents) != 0 {
				t.Errorf("staging not cleaned: %d entries", len(ents))
			}
		})
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	s, fr := newStore(t)
	_, plan, err := s.Apply(context.Background(), opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")), true)
	if err != nil || !plan.Ready || len(plan.Files) != 2 || plan.Files[0].From != "" {
		t.Fatalf("dry run of SP2 on a bare root: %+v %v", plan, err)
	}
	if ents, _ := os.ReadDir(string(s.Root)); len(ents) != 0 {
		t.Fatalf("a dry run on a bare root created %d entries", len(ents))
	}
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	before, _ := os.ReadFile(s.Root.Bin("msgtrack"))
	_, plan, err = s.Apply(context.Background(), opener(t, kb(t, "KB910618", "6.5.7651.45")), true)
	if err != nil || !plan.Ready || plan.Prerequisites != "met" {
		t.Fatalf("plan %+v err %v", plan, err)
	}
	if len(plan.Files) != 1 || plan.Files[0].From != "6.5.7638.1" || plan.Files[0].To != "6.5.7651.45" ||
		len(plan.Services) != 1 || plan.Services[0] != "tracking" || plan.Reboot {
		t.Fatalf("plan = %+v", plan)
	}
	after, _ := os.ReadFile(s.Root.Bin("msgtrack"))
	if string(before) != string(after) || fr.restarts != 0 || installedVersion(t, s.Root, "bin/msgtrack") != "6.5.7638.1" {
		t.Fatal("dry run changed the root")
	}
}

func TestUnhealthyBuildRollsBackByItself(t *testing.T) {
	s, fr := newStore(t)
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	fr.running = "6.5.7638.1"
	fr.bad["6.5.7651.45"] = true
	res, _, err := s.Apply(context.Background(), opener(t, kb(t, "KB910618", "6.5.7651.45")), false)
	var he *HealthError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "the previous build was put back") {
		t.Fatalf("apply of a failing build: %v", err)
	}
	if res.State != StateRolledBack {
		t.Errorf("state %s", res.State)
	}
	if fr.running != "6.5.7638.1" || fr.restarts != 2 {
		t.Errorf("relay runs %s after %d restarts; want 6.5.7638.1 after 2", fr.running, fr.restarts)
	}
	db := checkConsistent(t, s.Root)
	if f, _ := db.Lookup("bin/msgtrack"); f.Version.String() != "6.5.7638.1" {
		t.Errorf("database says %s", f.Version)
	}
	if _, ok := db.Package("KB910618"); ok {
		t.Error("failed hotfix recorded as installed")
	}
	h, _ := LoadHistory(s.Root)
	if last := h[len(h)-1]; last.Result != ResultRolledBack || !strings.Contains(last.Error, "did not become healthy") {
		t.Errorf("history %+v", last)
	}
}

func TestRollbackRefusesCorruptBackup(t *testing.T) {
	s, fr := newStore(t)
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
	db, _ := installdb.Load(s.Root)
	f, _ := db.Lookup("bin/msgtrack")
	backup := s.Root.Join(f.Previous[0].Backup)
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(backup, b, 0o755)
	dbBefore, _ := os.ReadFile(s.Root.InstalledDB())
	restarts := fr.restarts

	_, err = s.Rollback(context.Background(), "msgtrack")
	var be *BackupError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "is corrupt") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rollback with a corrupt backup: %v", err)
	}
	dbAfter, _ := os.ReadFile(s.Root.InstalledDB())
	if string(dbBefore) != string(dbAfter) || fr.restarts != restarts {
		t.Error("a refused rollback changed the root or restarted services")
	}
	checkConsistent(t, s.Root)
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7651.45" {
		t.Errorf("msgtrack %s", v)
	}
}

func TestOneTransactionAtATime(t *testing.T) {
	s, _ := newStore(t)
	l, err := AcquireLock(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, _, err = s.Apply(context.Background(), opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")), false)
	var be *BusyError
	if !errors.As(err, &be) || be.PID != os.Getpid() {
		t.Fatalf("second transaction: %v", err)
	}
	if !strings.Contains(err.Error(), "another hotfix transaction is in progress (pid ") {
		t.Errorf("message %q", err)
	}
}

// crash is what the test hook panics with to stop a transaction at a step boundary, as a kill
// would (the deferred lock release aside, which the kernel does for a killed process).
type crash struct{ step string }

func TestRecoverFromEveryStep(t *testing.T) {
	for _, rollback := range []bool{false, true} {
		for _, st := range Steps(1) {
			if st.Undo {
				continue // the way back is killed in TestKillLiveApplyAtEveryStep (packages/e2e)
			}
			step := st.Name
			name := "apply/" + step
			if rollback {
				name = "rollback/" + step
			}
			t.Run(name, func(t *testing.T) {
				s, fr := newStore(t)
				mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
				fr.running = "6.5.7638.1"
				if rollback {
					mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
				}
				s.Hook = func(got string) {
					if got == step {
						panic(crash{step})
					}
				}
				func() {
					defer func() {
						if r := recover(); r == nil {
							t.Fatalf("step %s never reached", step)
						} else if _, ok := r.(crash); !ok {
							panic(r)
						}
					}()
					if rollback {
						s.Rollback(context.Background(), "msgtrack")
					} else {
						s.Apply(context.Background(), opener(t, kb(t, "KB910618", "6.5.7651.45")), false)
					}
				}()
				s.Hook = nil
				rep, err := s.Recover(context.Background())
				if err != nil {
					t.Fatalf("recover: %v", err)
				}
				db := checkConsistent(t, s.Root)
				f, _ := db.Lookup("bin/msgtrack")
				// Finished from "healthy" on; undone before.
				after := st.Finishes
				want := map[bool]string{false: "6.5.7638.1", true: "6.5.7651.45"}[after != rollback]
				if f.Version.String() != want {
					t.Errorf("after recovery msgtrack is %s, want %s (%+v)", f.Version, want, rep)
				}
				if fr.running != want {
					t.Errorf("relay runs %s, want %s", fr.running, want)
				}
				if step != "committed" && rep.Outcome == RecoveredNothing {
					t.Errorf("recovery did nothing: %+v", rep)
				}
			})
		}
	}
}

// TestStepsListsEveryHook checks that Steps names every step boundary a transaction reaches, in
// order, so that the crash tests built on it miss none: a service pack of two files (no relay
// to restart yet), a hotfix with a running relay, and a failing build that goes back.
func TestStepsListsEveryHook(t *testing.T) {
	names := func(files int, keep func(Step) bool) []string {
		var out []string
		for _, st := range Steps(files) {
			if keep(st) {
				out = append(out, st.Name)
			}
		}
		return out
	}
	s, fr := newStore(t)
	var got []string
	s.Hook = func(step string) { got = append(got, step) }
	check := func(what string, want []string) {
		t.Helper()
		if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
			t.Errorf("%s reached\n %s\nSteps says\n %s", what, g, w)
		}
		got = nil
	}
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	check("service pack of two files", names(2, func(st Step) bool { return !st.Relay && !st.Undo }))
	fr.running = "6.5.7638.1"
	mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
	check("hotfix with a running relay", names(1, func(st Step) bool { return !st.Undo }))

	fr.bad["6.5.7651.46"] = true
	if _, _, err := s.Apply(context.Background(), opener(t, kb(t, "KB910619", "6.5.7651.46")), false); err == nil {
		t.Fatal("apply of a failing build succeeded")
	}
	// A failing build stops before "healthy" and goes back: every step it reached is listed,
	// the way back included.
	all := names(1, func(Step) bool { return true })
	for _, g := range got {
		if !slices.Contains(all, g) {
			t.Errorf("failing hotfix reached %s, which Steps does not list", g)
		}
	}
	for _, u := range names(1, func(st Step) bool { return st.Undo }) {
		if !slices.Contains(got, u) {
			t.Errorf("failing hotfix never reached %s (reached %v)", u, got)
		}
	}
}

func TestSwitchedOffServiceIsNotRestarted(t *testing.T) {
	s, fr := newStore(t)
	mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
	fr.running, fr.off = "6.5.7638.1", true
	res := mustApply(t, s, opener(t, kb(t, "KB910618", "6.5.7651.45")))
	if len(res.Services) != 1 || !res.Services[0].Deferred || res.Services[0].Note != "tracking is switched off" || fr.restarts != 0 {
		t.Fatalf("services %+v after %d restarts", res.Services, fr.restarts)
	}
	if v := installedVersion(t, s.Root, "bin/msgtrack"); v != "6.5.7651.45" {
		t.Errorf("msgtrack %s", v)
	}
	checkConsistent(t, s.Root)
}

func TestInterrupt(t *testing.T) {
	tests := []struct {
		step string
		want string // msgtrack afterwards
	}{
		{"staged", "6.5.7638.1"},    // before any file changed: stops and undoes
		{"backed-up", "6.5.7638.1"}, // the last point to stop
		{"swapping:0", "6.5.7651.45"},
		{"restarting", "6.5.7651.45"}, // files changed: runs to the end
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			s, fr := newStore(t)
			mustApply(t, s, opener(t, sp(t, 2, "6.5.7638", "6.5.7638.1")))
			fr.running = "6.5.7638.1"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s.Hook = func(step string) {
				if step == tt.step {
					cancel()
				}
			}
			_, _, err := s.Apply(ctx, opener(t, kb(t, "KB910618", "6.5.7651.45")), false)
			if stopped := errors.Is(err, context.Canceled); stopped != (tt.want == "6.5.7638.1") {
				t.Errorf("interrupted at %s: %v", tt.step, err)
			}
			if v := installedVersion(t, s.Root, "bin/msgtrack"); v != tt.want || fr.running != tt.want {
				t.Errorf("interrupted at %s: msgtrack %s, relay runs %s, want %s", tt.step, v, fr.running, tt.want)
			}
			checkConsistent(t, s.Root)
		})
	}
}
