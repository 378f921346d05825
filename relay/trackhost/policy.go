package trackhost

import (
	"fmt"
	"time"
)

// Escalation actions, taken when the component fails too often.
const (
	ActionNone     = "none"     // keep restarting with backoff
	ActionRun      = "run"      // run a program, with the failure described in its environment
	ActionRollback = "rollback" // run `hotfix rollback msgtrack --root ROOT`
)

// Config configures the tracking component. relayd fills it from its --tracking and --track-*
// flags, which ROOT/relayd.json can set under the same names, for instance
//
//	{"track-escalate": "rollback", "track-escalate-after": 5, "track-escalate-window": "60s",
//	 "track-restart-delay": "100ms", "track-restart-max": "5s"}
//
// Durations here are in milliseconds.
type Config struct {
	Enabled    bool   `json:"enabled"`
	Binary     string `json:"binary,omitempty"`
	Unverified bool   `json:"unverified,omitempty"`
	// ExpectedSum looks up the checksum the installed-files database records for the plugin
	// binary; relayd wires it to the database. nil lists nothing: the plugin runs only when
	// Unverified allows a binary the database does not list.
	ExpectedSum ExpectedSumFunc `json:"-"`
	Restart     RestartPolicy   `json:"restart"`
	Escalation  Escalation      `json:"escalation"`
}

// DefaultConfig is tracking on, with the restart policy and escalation named in the package comment.
func DefaultConfig() Config {
	return Config{
		Enabled:    true,
		Restart:    RestartPolicy{InitialMS: 100, MaxMS: 5000},
		Escalation: Escalation{After: 5, WindowMS: 60000, Action: ActionNone},
	}
}

// RestartPolicy is the delay before restarting a crashed component: InitialMS after the first
// crash in the window, doubling with each further one, never more than MaxMS, jittered by ±20% so
// that restarts of several relays do not fall into step. The jitter never takes a delay above
// MaxMS: near the cap it only shortens the delay.
type RestartPolicy struct {
	InitialMS int `json:"initial_ms"`
	MaxMS     int `json:"max_ms"`
}

// bounds returns the first delay and the longest, with the defaults filled in.
func (p RestartPolicy) bounds() (initial, longest time.Duration) {
	initial = time.Duration(p.InitialMS) * time.Millisecond
	longest = time.Duration(p.MaxMS) * time.Millisecond
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	return initial, max(longest, initial)
}

// Max returns the longest delay the policy allows.
func (p RestartPolicy) Max() time.Duration {
	_, longest := p.bounds()
	return longest
}

// Delay returns the delay before restart number attempt (0 for the first crash in the window).
// rnd is a random number in [0,1) that sets the jitter.
func (p RestartPolicy) Delay(attempt int, rnd float64) time.Duration {
	initial, longest := p.bounds()
	d := initial
	for i := 0; i < attempt && d < longest; i++ {
		d *= 2
	}
	d = min(d, longest)
	lo := time.Duration(float64(d) * 0.8)
	hi := min(time.Duration(float64(d)*1.2), longest)
	return lo + time.Duration(float64(hi-lo)*rnd)
}

// Escalation is what to do when the component has failed After times within WindowMS.
type Escalation struct {
	After    int      `json:"after"`
	WindowMS int      `json:"window_ms"`
	Action   string   `json:"action"`            // none, run or rollback
	Program  string   `json:"program,omitempty"` // for run
	Args     []string `json:"args,omitempty"`    // for run
	Hotfix   string   `json:"hotfix,omitempty"`  // for rollback: the hotfix binary
	// GraceMS is how long a program still running when the relay stops may go on before it
	// gets SIGTERM (DefaultEscalationGrace).
	GraceMS int `json:"grace_ms,omitempty"`
}

// Validate reports a configuration that cannot work.
func (e Escalation) Validate() error {
	switch e.Action {
	case "", ActionNone, ActionRollback:
	case ActionRun:
		if e.Program == "" {
			return fmt.Errorf("tracking escalation %q needs a program", e.Action)
		}
	default:
		return fmt.Errorf("tracking escalation action %q: want none, run or rollback", e.Action)
	}
	return nil
}

// failureWindow counts failures within a sliding window.
type failureWindow struct {
	times []time.Time
}

// Decision is what the supervisor does after a failure.
type Decision struct {
	Count    int           // failures within the window, this one included
	Delay    time.Duration // before the restart
	Escalate bool          // take the escalation action now
}

// fail records a failure at now and decides what to do. The escalation fires each time the count
// within the window reaches After; the window then starts afresh so that it does not fire again on
// the very next failure.
func (w *failureWindow) fail(now time.Time, p RestartPolicy, e Escalation, rnd float64) Decision {
	window := time.Duration(e.WindowMS) * time.Millisecond
	if window <= 0 {
		window = time.Minute
	}
	kept := w.times[:0]
	for _, t := range w.times {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	w.times = append(kept, now)
	d := Decision{Count: len(w.times), Delay: p.Delay(len(w.times)-1, rnd)}
	if e.After > 0 && d.Count >= e.After && e.Action != "" && e.Action != ActionNone {
		d.Escalate = true
		w.times = w.times[:0]
	}
	return d
}

// reset forgets past failures: the operator restarted the component by hand.
func (w *failureWindow) reset() { w.times = w.times[:0] }

// EventMessage is the log line for a failure, worded as the Service Control Manager's event 7031.
func EventMessage(component string, d Decision, e Escalation) string {
	action := "Restart the component."
	if d.Escalate {
		switch e.Action {
		case ActionRun:
			action = "Run the configured program, then restart the component."
		case ActionRollback:
			action = "Roll the component back to its previous build, then restart the component."
		}
	}
	return fmt.Sprintf("The %s component terminated unexpectedly. It has done this %d time(s). "+
		"The following corrective action will be taken in %d milliseconds: %s",
		component, d.Count, d.Delay.Milliseconds(), action)
}
