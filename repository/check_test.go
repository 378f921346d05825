package repository

import (
	"context"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest"
	"relayfix/relay/crashlog"
)

// checkRepo publishes SP1, SP2, KB900001 (an older tracking hotfix) and KB910618, which
// supersedes KB900001 and, as packaging/KB910618.json says, fixes the pre-fix tracking crash.
type checkRepo struct {
	f   *fixture
	pk  packs
	kb1 string
	pub *Publisher
	srv *server
}

func newCheckRepo(t *testing.T) *checkRepo {
	t.Helper()
	f := newFixture(t)
	pk := f.standard(t)
	kb := kb910618(t)
	kb.Supersedes = []string{"KB900001"}
	pk.kb = f.pack(t, kb, map[string]string{"bin/msgtrack": "6.5.7651.45"}, kbDate)
	old := kb910618(t)
	old.ID, old.Title, old.Fixes = "KB900001", "Tracking log rotation", nil
	old.Files = []manifest.File{{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking"}}
	kb1 := f.pack(t, old, map[string]string{"bin/msgtrack": "6.5.7640.1"}, kbDate.Add(-30*24*time.Hour))
	p := publish(t, f, pk.sp1, pk.sp2, kb1, pk.kb)
	return &checkRepo{f: f, pk: pk, kb1: kb1, pub: p, srv: serve(t, p.Served())}
}

// root returns a client of a new root with the packages applied in order.
func (r *checkRepo) root(t *testing.T, pkgs ...string) *Client {
	t.Helper()
	c := client(t, r.pub, r.srv.URL)
	for _, p := range pkgs {
		r.f.apply(t, c.Root, p)
	}
	return c
}

const (
	spNeeded  = "requires service pack 2 (relayfix >= 6.5.7638); this root has service pack 1 (relayfix 6.5.7226)"
	noRaiseSP = "would not raise the installed level: it installs service pack 1 (relayfix 6.5.7226); this root has service pack 2 (relayfix 6.5.7638)"
)

func TestCheckStates(t *testing.T) {
	r := newCheckRepo(t)
	type want struct {
		state  State
		detail string // reason, or superseded by
	}
	tests := []struct {
		name string
		pkgs []string
		want map[string]want
	}{
		{"SP1", []string{r.pk.sp1}, map[string]want{
			"SP1":      {StateInstalled, ""},
			"SP2":      {StateApplicable, ""},
			"KB900001": {StateNotApplicable, spNeeded},
			"KB910618": {StateNotApplicable, spNeeded},
		}},
		{"SP2", []string{r.pk.sp2}, map[string]want{
			"SP1":      {StateNotApplicable, noRaiseSP},
			"SP2":      {StateInstalled, ""},
			"KB900001": {StateSuperseded, "KB910618 (available)"},
			"KB910618": {StateApplicable, ""},
		}},
		{"SP2+KB910618", []string{r.pk.sp2, r.pk.kb}, map[string]want{
			"SP1":      {StateNotApplicable, noRaiseSP},
			"SP2":      {StateInstalled, ""},
			"KB900001": {StateSuperseded, "KB910618"},
			"KB910618": {StateInstalled, ""},
		}},
		{"SP1 then SP2", []string{r.pk.sp1, r.pk.sp2}, map[string]want{
			"SP1":      {StateInstalled, ""},
			"SP2":      {StateInstalled, ""},
			"KB900001": {StateSuperseded, "KB910618 (available)"},
			"KB910618": {StateApplicable, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := r.root(t, tt.pkgs...)
			rep, err := Check(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Packages) != len(tt.want) {
				t.Fatalf("%d packages, want %d: %+v", len(rep.Packages), len(tt.want), rep.Packages)
			}
			for _, v := range rep.Packages {
				w := tt.want[v.ID]
				detail := v.Reason + v.SupersededBy
				if v.State != w.state || detail != w.detail {
					t.Errorf("%s: %s %q, want %s %q", v.ID, v.State, detail, w.state, w.detail)
				}
			}
			if len(rep.Problems) != 0 {
				t.Errorf("problems without a crash: %+v", rep.Problems)
			}
		})
	}
}

// crash records n crashes of a build with a signature on root, the first at first.
func crash(t *testing.T, root layout.Root, build, sig string, n int, first time.Time) {
	t.Helper()
	kind, frame, _ := strings.Cut(sig, " in ")
	s := crashlog.Open(crashlog.Path(root))
	for i := range n {
		c := crashlog.Crash{Component: "tracking", Program: "msgtrack", Build: build, Signature: crashlog.Signature{Kind: kind, Frame: frame}}
		if err := s.Record(c, first.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckKnownProblem(t *testing.T) {
	r := newCheckRepo(t)
	const recordsFor = "nil pointer dereference in relayfix/relay/trackplugin.recordsFor"
	today := time.Now().UTC()
	first := time.Date(today.Year(), today.Month(), today.Day(), 13, 2, 0, 0, time.UTC)
	tests := []struct {
		name  string
		pkgs  []string
		build string
		sig   string
		want  string // the problem line, or "" for none
	}{
		{"pre-fix tracking crashed", []string{r.pk.sp2}, "6.5.7638.1", recordsFor,
			"msgtrack 6.5.7638.1 crashed 14 times since 13:02 UTC (nil pointer dereference in relayfix/relay/trackplugin.recordsFor): KB910618 fixes this — hotfix apply KB910618"},
		{"no crashes", []string{r.pk.sp2}, "", "", ""},
		{"another signature", []string{r.pk.sp2}, "6.5.7638.1", "index out of range in relayfix/relay/tracklog.(*Writer).Write", ""},
		{"same signature, build not affected", []string{r.pk.sp2}, "6.5.7651.45", recordsFor, ""},
		{"fix installed", []string{r.pk.sp2, r.pk.kb}, "6.5.7638.1", recordsFor, ""},
		{"fix needs SP2 first", []string{r.pk.sp1}, "6.5.7638.1", recordsFor,
			"msgtrack 6.5.7638.1 crashed 14 times since 13:02 UTC (nil pointer dereference in relayfix/relay/trackplugin.recordsFor): KB910618 fixes this — it " + spNeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := r.root(t, tt.pkgs...)
			if tt.sig != "" {
				crash(t, c.Root, tt.build, tt.sig, 14, first)
			}
			rep, err := Check(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, p := range rep.Problems {
				lines = append(lines, p.Line(today))
			}
			got := strings.Join(lines, "\n")
			if got != tt.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestProblemLineNamesDayWhenNotToday(t *testing.T) {
	p := Problem{Record: crashlog.Record{Program: "msgtrack", Build: "6.5.7638.1", Count: 1, Signature: "panic in relayfix/x.f",
		First: time.Date(2026, 11, 30, 13, 2, 0, 0, time.UTC)}, FixedBy: "KB1", Advice: "hotfix apply KB1"}
	want := "msgtrack 6.5.7638.1 crashed 1 time since 2026-11-30 13:02 UTC (panic in relayfix/x.f): KB1 fixes this — hotfix apply KB1"
	if got := p.Line(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)); got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}
