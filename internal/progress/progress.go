// Package progress draws the progress of long work on one terminal line ("verifying
// KB910618.hfx: 12.0 MiB of 27.4 MiB (44%)") and stays silent when the output is not a terminal,
// so that piped output and logs carry only results.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"relayfix/internal/tableprint"
)

// interval is the least time between two redraws.
const interval = 100 * time.Millisecond

// Meter draws one line of progress.
type Meter struct {
	w     io.Writer
	label string
	on    bool
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time
	drawn int // width of what is on the line now
}

// New returns a meter that draws on w when w is a terminal, and does nothing otherwise.
func New(w io.Writer, label string) *Meter {
	return &Meter{w: w, label: label, on: tableprint.IsTerminal(w), now: time.Now}
}

// Update redraws the line for done of total bytes (total <= 0 when unknown), at most every
// 100 ms, and always when done reaches total.
func (m *Meter) Update(done, total int64) {
	if m == nil || !m.on {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.now()
	if t.Sub(m.last) < interval && (total <= 0 || done < total) {
		return
	}
	m.last = t
	line := fmt.Sprintf("%s: %s", m.label, Bytes(done))
	if total > 0 {
		line += fmt.Sprintf(" of %s (%d%%)", Bytes(total), done*100/total)
	}
	pad := max(m.drawn-len(line), 0)
	fmt.Fprintf(m.w, "\r%s%s", line, strings.Repeat(" ", pad))
	m.drawn = len(line)
}

// Done clears the line.
func (m *Meter) Done() {
	if m == nil || !m.on {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drawn > 0 {
		fmt.Fprintf(m.w, "\r%s\r", strings.Repeat(" ", m.drawn))
		m.drawn = 0
	}
}

// Bytes formats n as a size in binary units.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
