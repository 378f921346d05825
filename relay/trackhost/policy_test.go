package trackhost

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRestartDelay(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	def := RestartPolicy{InitialMS: 100, MaxMS: 5000}
	tests := []struct {
		name    string
		p       RestartPolicy
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first", def, 0, 0.5, ms(100)},
		{"second", def, 1, 0.5, ms(200)},
		{"third", def, 2, 0.5, ms(400)},
		{"sixth", def, 5, 0.5, ms(3200)},
		{"first, -20%", def, 0, 0, ms(80)},
		{"first, just under +20%", def, 0, 0.999999, ms(119.999)},
		{"sixth, just under +20%", def, 5, 0.999999, ms(3839.9984)},
		// At the cap the jitter only shortens the delay: 5,750 ms was once logged with a 5 s cap.
		{"capped, no jitter up", def, 6, 0.875, ms(4875)},
		{"capped, top", def, 6, 0.999999, ms(4999.999)},
		{"capped, bottom", def, 6, 0, ms(4000)},
		{"far past the cap", def, 60, 0.5, ms(4500)},
		// +20% would cross the cap before doubling reaches it.
		{"near the cap", RestartPolicy{InitialMS: 100, MaxMS: 3500}, 5, 0.999999, ms(3499.9994)},
		{"zero policy: 100 ms, also the cap", RestartPolicy{}, 0, 0.5, ms(90)},
		{"zero policy, capped at the first delay", RestartPolicy{}, 3, 0.999999, ms(99.99992)},
		{"max below initial", RestartPolicy{InitialMS: 300, MaxMS: 100}, 2, 0.999999, ms(299.9994)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.Delay(tt.attempt, tt.rnd)
			if diff := got - tt.want; diff < -time.Microsecond || diff > time.Microsecond {
				t.Errorf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
			if got > tt.p.Max() {
				t.Errorf("Delay(%d, %v) = %v, above the maximum %v", tt.attempt, tt.rnd, got, tt.p.Max())
			}
		})
	}
}

// Whatever the policy, the attempt and the jitter, a delay stays within [80% of InitialMS, MaxMS].
func TestRestartDelayNeverExceedsItsMaximum(t *testing.T) {
	for _, p := range []RestartPolicy{{100, 5000}, {20, 200}, {100, 1000}, {1000, 1000}, {0, 0}, {500, 50}} {
		initial, longest := p.bounds()
		for attempt := range 12 {
			for _, rnd := range []float64{0, 0.25, 0.5, 0.75, 0.875, 0.999999} {
				d := p.Delay(attempt, rnd)
				if d > longest || d < initial*8/10 {
					t.Errorf("%+v: Delay(%d, %v) = %v, outside [%v, %v]", p, attempt, rnd, d, initial*8/10, longest)
				}
			}
		}
	}
}

func TestFailureWindowEscalates(t *testing.T) {
	p := RestartPolicy{InitialMS: 100, MaxMS: 1000}
	e := Escalation{After: 3, WindowMS: 60000, Action: ActionRollback}
	t0 := time.Date(2026, 2, 14, 3, 36, 0, 0, time.UTC)
	steps := []struct {
		at       time.Duration
		build    string
		count    int
		delay    time.Duration
		escalate bool
	}{
		{0, "a", 1, 100 * time.Millisecond, false},
		{10 * time.Second, "a", 2, 200 * time.Millisecond, false},
		{20 * time.Second, "a", 3, 400 * time.Millisecond, true},  // third in 60 s: escalate
		{25 * time.Second, "a", 4, 800 * time.Millisecond, false}, // the window goes on, the delay grows
		{26 * time.Second, "a", 5, 900 * time.Millisecond, false}, // to its cap (jittered below it); same build: no second escalation
		{27 * time.Second, "a", 6, 900 * time.Millisecond, false},
		{28 * time.Second, "b", 7, 900 * time.Millisecond, true}, // another build installed: escalate again
		{29 * time.Second, "b", 8, 900 * time.Millisecond, false},
		{200 * time.Second, "b", 1, 100 * time.Millisecond, false}, // a quiet spell: the count falls, re-armed
		{210 * time.Second, "b", 2, 200 * time.Millisecond, false},
		{215 * time.Second, "b", 3, 400 * time.Millisecond, true},
	}
	var w failureWindow
	for i, s := range steps {
		d := w.fail(t0.Add(s.at), p, e, 0.5, s.build)
		if d.Count != s.count || d.Delay != s.delay || d.Escalate != s.escalate {
			t.Errorf("step %d at %v: got %+v, want count %d delay %v escalate %v", i, s.at, d, s.count, s.delay, s.escalate)
		}
	}
	w.reset()
	if d := w.fail(t0.Add(216*time.Second), p, Escalation{After: 1, WindowMS: 60000, Action: ActionRollback}, 0.5, "b"); !d.Escalate {
		t.Errorf("after the operator's restart: %+v, want an escalation", d)
	}
}

func TestFailureWindowNoneNeverEscalates(t *testing.T) {
	var w failureWindow
	t0 := time.Now()
	for i := range 10 {
		d := w.fail(t0.Add(time.Duration(i)*time.Millisecond), RestartPolicy{}, Escalation{After: 2, Action: ActionNone}, 0.5, "")
		if d.Escalate {
			t.Fatalf("failure %d escalated with action none", i+1)
		}
		if d.Count != i+1 {
			t.Fatalf("failure %d counted %d", i+1, d.Count)
		}
	}
	w.reset()
	if d := w.fail(t0, RestartPolicy{}, Escalation{}, 0.5, ""); d.Count != 1 {
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
