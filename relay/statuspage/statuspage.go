// Package statuspage is relayd's read-only status page and its /healthz answer, served beside
// /metrics when relayd runs with --metrics-listen.
//
// The page is what an operator looks at first when mail is late: the product and service pack
// level, the installed files in the KB's own columns, each component's running build against its
// installed file (a restart is pending when they differ), the queue, the health and crashes of
// message tracking, the last tracking records, and the hotfix history. It is rendered on the
// server with html/template from the same snapshots the control socket and the metrics read, so
// there is nothing to keep in step; it refreshes itself with a meta refresh and needs no
// JavaScript, and a narrow screen gets the same content with tables that scroll sideways.
//
// Everything that comes from a message (addresses, subjects, queue ids, replies) is text that
// html/template escapes for its context: a subject of <script>alert(1)</script> shows as those
// characters and never runs. The page only reads: it has no forms and answers only GET and HEAD.
package statuspage

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"relayfix/relay/control"
	"relayfix/relay/installed"
	"relayfix/relay/metrics"
	"relayfix/relay/tracklog"
)

// Source is the relay the page shows.
type Source interface {
	Status() control.Status
	Queue(limit int) []control.QueueEntry
}

// Options configure a Page.
type Options struct {
	Relay     Source
	Installed installed.Reader // nil: nothing installed is shown
	// Tracking returns the last n tracking records; nil shows none.
	Tracking func(n int) ([]tracklog.Record, error)
	// Healthy reports whether the relay takes mail; /healthz answers 503 with its error.
	Healthy func() error
	// Refresh is how often the page reloads itself (10 seconds).
	Refresh time.Duration
	Now     func() time.Time
}

// Rows shown in the page's lists.
const (
	queueRows    = 20
	trackingRows = 12
	historyRows  = 20
)

// Page serves the status page.
type Page struct {
	opts Options
}

// New returns the page.
func New(opts Options) *Page {
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Page{opts: opts}
}

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"bytes":  formatBytes,
	"count":  countOf,
	"utc":    func(t time.Time) string { return formatTime(t, "2006-01-02 15:04:05") },
	"day":    func(t time.Time) string { return formatTime(t, "2006-01-02") },
	"date":   func(t time.Time) string { return formatTime(t, "02-Jan-2006") },
	"clock":  func(t time.Time) string { return formatTime(t, "15:04") },
	"hhmmss": func(t time.Time) string { return formatTime(t, "15:04:05.000") },
	"event": func(r tracklog.Record) string {
		return strconv.Itoa(int(r.EventID)) + " " + tracklog.EventName(r.EventID)
	},
}).Parse(pageHTML))

// view is what the template renders.
type view struct {
	Refresh     int
	Host        string
	Generated   time.Time
	Status      control.Status
	Uptime      string
	Product     installed.Product
	Files       []installed.File
	History     []installed.Transaction
	Components  []componentView
	Pending     []string // components with a restart pending
	Queue       []control.QueueEntry
	OldestAge   string
	Tracking    *control.ComponentStatus
	Crashes     []crashView
	Records     []tracklog.Record
	Errors      []string
	Received    uint64
	Delivered   uint64
	Deferred    uint64
	Bounced     uint64
	Refused     uint64
	Connections uint64
}

// crashView is a crash signature with the package that fixes it, if a repository offers one.
type crashView struct {
	control.CrashSignature
	Fix *installed.Fix
}

type componentView struct {
	Name             string
	Running          string
	State            string
	PID              int
	InstalledPath    string
	InstalledVersion string
	RestartPending   bool
}

func (p *Page) build() view {
	now := p.opts.Now()
	st := p.opts.Relay.Status()
	v := view{
		Refresh:   int(p.opts.Refresh / time.Second),
		Generated: now.UTC(),
		Status:    st,
		Uptime:    (time.Duration(st.Uptime) * time.Second).String(),
		Queue:     p.opts.Relay.Queue(queueRows),
	}
	v.Host, _ = os.Hostname()
	n := st.Counters
	v.Received, v.Delivered, v.Deferred, v.Bounced = n["received"], n["delivered"], n["deferred"], n["bounced"]
	v.Refused, v.Connections = n["refused"]+n["overload"]+n["rejected"], n["connections"]
	if !st.Oldest.IsZero() {
		v.OldestAge = now.Sub(st.Oldest).Round(time.Second).String()
	}
	var snap installed.Snapshot
	if p.opts.Installed != nil {
		var err error
		if snap, err = p.opts.Installed.Read(); err != nil {
			v.Errors = append(v.Errors, err.Error())
		}
	}
	v.Product, v.Files = snap.Product, snap.Files
	v.History = slices.Clone(snap.History)
	slices.Reverse(v.History)
	if len(v.History) > historyRows {
		v.History = v.History[:historyRows]
	}

	f, _ := snap.File(metrics.RelaydComponent)
	v.Components = append(v.Components, componentView{
		Name: metrics.RelaydComponent, Running: st.Version, State: "running", PID: st.PID,
		InstalledPath: f.Path, InstalledVersion: f.Version, RestartPending: snap.RestartPending(metrics.RelaydComponent, st.Version),
	})
	for i, cs := range st.Components {
		running := cs.Version
		if cs.PID == 0 {
			running = ""
		}
		f, _ := snap.File(cs.Name)
		v.Components = append(v.Components, componentView{
			Name: cs.Name, Running: running, State: cs.Health, PID: cs.PID,
			InstalledPath: f.Path, InstalledVersion: f.Version, RestartPending: snap.RestartPending(cs.Name, running),
		})
		if cs.Name == metrics.TrackingComponent {
			v.Tracking = &st.Components[i]
			for _, c := range cs.CrashSignatures {
				cv := crashView{CrashSignature: c}
				if fix, ok := snap.FixFor(cs.Name, c.Signature); ok {
					cv.Fix = &fix
				}
				v.Crashes = append(v.Crashes, cv)
			}
		}
	}
	for _, c := range v.Components {
		if c.RestartPending {
			v.Pending = append(v.Pending, c.Name)
		}
	}
	if p.opts.Tracking != nil {
		recs, err := p.opts.Tracking(trackingRows)
		if err != nil {
			v.Errors = append(v.Errors, err.Error())
		}
		slices.Reverse(recs)
		v.Records = recs
	}
	return v
}

// ServeHTTP renders the page.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p.build()); err != nil {
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page runs no script and loads nothing from elsewhere; say so to the browser, so that
	// even a template mistake could not make a message's text run.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}

// Healthz answers 200 "ok" while the relay takes mail and 503 with the reason otherwise, for load
// balancers and service monitors.
func (p *Page) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if p.opts.Healthy != nil {
			if err := p.opts.Healthy(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
}

// ReadOnly passes GET and HEAD requests to h and refuses every other method.
func ReadOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func formatTime(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(layout)
}

func countOf(v any) string {
	switch n := v.(type) {
	case int:
		return formatCount(n)
	case int64:
		return formatCount(n)
	case uint64:
		return formatCount(n)
	}
	return fmt.Sprint(v)
}

// formatCount writes n with thousands separators, as the KB's file tables do (99,040).
func formatCount[T int | int64 | uint64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
