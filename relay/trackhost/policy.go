package trackhost

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"time"

	"relayfix/internal/layout"
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

// Check reports an escalation whose program is not there to run: relayd refuses to start with it
// rather than fail at every escalation. root supplies the default hotfix, ROOT/bin/hotfix.
func (e Escalation) Check(root layout.Root) error {
	var prog, flag string
	switch e.Action {
	case ActionRun:
		prog, flag = e.Program, "--track-escalate-program"
	case ActionRollback:
		prog, flag = e.Hotfix, "--track-hotfix"
		if prog == "" {
			prog = root.Bin("hotfix")
		}
	default:
		return nil
	}
	if _, err := exec.LookPath(prog); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("tracking escalation %q needs %s: %w; install it there or name another with %s", e.Action, prog, err, flag)
	}
	return nil
}

// failureWindow counts failures within a sliding window and remembers the escalation taken.
type failureWindow struct {
	times []time.Time
	// escalated is set once the escalation was taken for the build escalatedFor: it is not taken
	// again, whatever its outcome, until something changes (another build installed, a quiet
	// spell that brings the count below After, or the operator's restart).
	escalated    bool
	escalatedFor string
}

// Decision is what the supervisor does after a failure.
type Decision struct {
	Count    int           // failures within the window, this one included
	Delay    time.Duration // before the restart
	Escalate bool          // take the escalation action now
}

// fail records a failure at now of the build identified by build (its checksum) and decides what
// to do. The escalation fires when the count within the window reaches After, once per build:
// the window is not restarted by it, so the restart delay keeps growing to its cap and the count
// keeps telling how often the component failed.
func (w *failureWindow) fail(now time.Time, p RestartPolicy, e Escalation, rnd float64, build string) Decision {
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
	if e.After <= 0 || d.Count < e.After || e.Action == "" || e.Action == ActionNone {
		w.escalated = false
		return d
	}
	if w.escalated && w.escalatedFor == build {
		return d
	}
	d.Escalate = true
	w.escalated, w.escalatedFor = true, build
	return d
}

// count returns the failures within the window at now.
func (w *failureWindow) count(now time.Time, e Escalation) int {
	window := time.Duration(e.WindowMS) * time.Millisecond
	if window <= 0 {
		window = time.Minute
	}
	n := 0
	for _, t := range w.times {
		if now.Sub(t) < window {
			n++
		}
	}
	return n
}

// reset forgets past failures and escalations: the operator restarted the component by hand.
func (w *failureWindow) reset() {
	w.times = w.times[:0]
	w.escalated = false
}

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
