package trackhost

import (
	"log/slog"
	"path/filepath"
	"time"

	"relayfix/relay/control"
	"relayfix/relay/crashlog"
)

// crashRecorder keeps the signature of every plugin crash durably (ROOT/spool/tracking's crash
// records), so that hotfix check can match it against the packages that declare they fix it.
type crashRecorder struct {
	store   *crashlog.Store
	program string // the plugin's file name, e.g. msgtrack
	log     *slog.Logger
}

// record keeps the signature of p's crash, if it panicked.
func (c *crashRecorder) record(p *proc) {
	sig, ok := p.stderr.crash.Signature()
	if !ok {
		return
	}
	cr := crashlog.Crash{Component: ComponentName, Program: c.program, Build: p.version, Signature: sig}
	if err := c.store.Record(cr, time.Now()); err != nil {
		c.log.Error("record crash signature", "signature", sig.String(), "error", err)
	}
}

// signatures gives the recorded crashes as the control socket shows them.
func (c *crashRecorder) signatures() []control.CrashSignature {
	rs, err := c.store.Records()
	if err != nil {
		return nil
	}
	var out []control.CrashSignature
	for _, r := range rs {
		out = append(out, control.CrashSignature{Signature: r.Signature, Program: r.Program,
			Build: r.Build, Count: r.Count, First: r.First, Last: r.Last})
	}
	return out
}

func newCrashRecorder(store *crashlog.Store, binary string, log *slog.Logger) *crashRecorder {
	return &crashRecorder{store: store, program: filepath.Base(binary), log: log}
}
