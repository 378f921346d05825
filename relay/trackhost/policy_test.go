package trackhost

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRestartDelay(t *testing.T) {
	p := RestartPolicy{InitialMS: 100, MaxMS: 5000}
	tests := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{0, 0.5, 100 * time.Millisecond},
		{1, 0.5, 200 * time.Millisecond},
		{2, 0.5, 400 * time.Millisecond},
		{5, 0.5, 3200 * time.Millisecond},
		{6, 0.5, 5000 * time.Millisecond}, // 6400 capped
		{60, 0.5, 5000 * time.Millisecond},
		{0, 0, 80 * time.Millisecond},            // -20%
		{0, 0.999999, 119999 * time.Microsecond}, // just under +20%
		{6, 0, 4000 * time.Millisecond},
	}
	for _, tt := range tests {
		got := p.Delay(tt.attempt, tt.rnd)
		if diff := got - tt.want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
		}
	}
	if got := (RestartPolicy{}).Delay(0, 0.5); got != 100*time.Millisecond {
		t.Errorf("zero policy: %v, want the 100ms default", got)
	}
}

func TestFailureWindowEscalates(t *testing.T) {
	p := RestartPolicy{InitialMS: 100, MaxMS: 5000}
	e := Escalation{After: 3, WindowMS: 60000, Action: ActionRollback}
	t0 := time.Date(2026, 2, 14, 3, 36, 0, 0, time.UTC)
	steps := []struct {
		at       time.Duration
		count    int
		delay    time.Duration
		escalate bool
	}{
		{0, 1, 100 * time.Millisecond, false},
		{10 * time.Second, 2, 200 * time.Millisecond, false},
		{20 * time.Second, 3, 400 * time.Millisecond, true}, // third in 60 s: escalate, window restarts
		{25 * time.Second, 1, 100 * time.Millisecond, false},
		{200 * time.Second, 1, 100 * time.Millisecond, false}, // the one at 25 s has aged out
		{210 * time.Second, 2, 200 * time.Millisecond, false},
		{215 * time.Second, 3, 400 * time.Millisecond, true},
	}
	var w failureWindow
	for i, s := range steps {
		d := w.fail(t0.Add(s.at), p, e, 0.5)
		if d.Count != s.count || d.Delay != s.delay || d.Escalate != s.escalate {
			t.Errorf("step %d at %v: got %+v, want count %d delay %v escalate %v", i, s.at, d, s.count, s.delay, s.escalate)
		}
	}
}

func TestFailureWindowNoneNeverEscalates(t *testing.T) {
	var w failureWindow
	t0 := time.Now()
	for i := range 10 {
		d := w.fail(t0.Add(time.Duration(i)*time.Millisecond), RestartPolicy{}, Escalation{After: 2, Action: ActionNone}, 0.5)
		if d.Escalate {
			t.Fatalf("failure %d escalated with action none", i+1)
		}
		if d.Count != i+1 {
			t.Fatalf("failure %d counted %d", i+1, d.Count)
		}
	}
	w.reset()
	if d := w.fail(t0, RestartPolicy{}, Escalation{}, 0.5); d.Count != 1 {
		t.Fatalf("after reset: count %d", d.Count)
	}
}

func TestEventMessage(t *testing.T) {
	got := EventMessage("tracking", Decision{Count: 3, Delay: 400 * time.Millisecond}, Escalation{})
	want := "The tracking component terminated unexpectedly. It has done this 3 time(s). " +
		"The following corrective action will be taken in 400 milliseconds: Restart the component."
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	got = EventMessage("tracking", Decision{Count: 5, Delay: time.Second, Escalate: true}, Escalation{Action: ActionRollback})
	if !strings.Contains(got, "Roll the component back") || !strings.Contains(got, "5 time(s)") {
		t.Fatalf("escalation wording: %q", got)
	}
}

func TestEscalationValidate(t *testing.T) {
	for _, tt := range []struct {
		e  Escalation
		ok bool
	}{
		{Escalation{}, true},
		{Escalation{Action: ActionNone}, true},
		{Escalation{Action: ActionRollback}, true},
		{Escalation{Action: ActionRun, Program: "/bin/true"}, true},
		{Escalation{Action: ActionRun}, false},
		{Escalation{Action: "reboot"}, false},
	} {
		if err := tt.e.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v", tt.e, err)
		}
	}
}

func TestSlogWriterKeepsLevels(t *testing.T) {
	var b strings.Builder
	w := slogWriter{slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	w.Write([]byte(`{"@level":"warn","@message":"message properties unavailable","@module":"msgtrack","queue_id":"Q1","timestamp":"x"}` + "\n"))
	w.Write([]byte(`{"@level":"error","@message":"panic: boom"}` + "\n"))
	w.Write([]byte("not json\n"))
	out := b.String()
	for _, want := range []string{
		`level=WARN msg="message properties unavailable" @module=msgtrack queue_id=Q1`,
		`level=ERROR msg="panic: boom"`,
		`level=INFO msg="not json"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "timestamp=") {
		t.Errorf("plugin timestamp repeated:\n%s", out)
	}
}
