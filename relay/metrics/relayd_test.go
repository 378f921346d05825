package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
)

var bins relaytest.Binaries

func TestMain(m *testing.M) {
	relaytest.Main(m, &bins, relaytest.RelaydProgram, relaytest.TrackFixedProgram)
}

// sample is one scrape: "name{labels}" -> value, labels as the exposition format writes them.
type sample map[string]float64

func scrape(t *testing.T, addr string) (sample, string) {
	t.Helper()
	code, body, err := relaytest.Get(t.Context(), "http://"+addr+"/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape: %d %v", code, err)
	}
	s := sample{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		s[line[:i]] = v
	}
	return s, body
}

// TestMetricsCountMessages sends n messages through the real relayd and checks that every counter
// and histogram that counts them moved by exactly n between two scrapes, and that promtool finds
// nothing to say about the exposition.
func TestMetricsCountMessages(t *testing.T) {
	promtool := relaytest.Tool(t, "promtool", "prometheus")
	root := relaytest.ShortRoot(t)
	relaytest.Install(t, root, stamp.ProductVersion, 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: stamp.RelaydVersion, Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: stamp.TrackFixedVersion, Package: "KB910618", Src: bins.TrackFixed})
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() }) // after relayd has stopped: cleanups run last first
	r := relaytest.StartRelayd(t, bins.Relayd, root, sink.Addr(), "--metrics-listen", "127.0.0.1:0")
	addr := r.HTTPAddr()
	relaytest.WaitFor(t, time.Minute, "tracking healthy", func() bool {
		st, err := r.Ctl.Status(t.Context())
		return err == nil && len(st.Components) == 1 && st.Components[0].Health == control.HealthHealthy
	})

	// The listener answers load balancers and reads only.
	if code, body, err := relaytest.Get(t.Context(), "http://"+addr+"/healthz"); err != nil || code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q %v", code, body, err)
	}
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}

	before, _ := scrape(t, addr)
	const n, conns = 300, 4
	res, err := smtpload.Load(t.Context(), smtpload.LoadOptions{Addr: r.Addr, N: n, Concurrency: conns, Size: 2048, Duration: time.Minute})
	if err != nil || res.Acked != n {
		t.Fatalf("load: acked %d of %d: %v %v", res.Acked, n, err, res.FirstError)
	}
	// Deliveries and tracking trail the acknowledgements: wait for them, then scrape once more.
	var after sample
	var body string
	relaytest.WaitFor(t, time.Minute, "every message delivered and tracked", func() bool {
		after, body = scrape(t, addr)
		return after["relayfix_messages_delivered_total"]-before["relayfix_messages_delivered_total"] >= n &&
			after["relayfix_tracking_events_written_total"]-before["relayfix_tracking_events_written_total"] >= 3*n &&
			after["relayfix_queue_messages"] == 0
	})
	exact := []struct {
		name string
		want float64
	}{
		{"relayfix_messages_received_total", n},
		{"relayfix_messages_delivered_total", n},
		{"relayfix_smtp_transaction_duration_seconds_count", n},
		{"relayfix_delivery_duration_seconds_count", n},
		{"relayfix_tracking_events_written_total", 3 * n}, // received, queued, delivered
		{"relayfix_smtp_sessions_total", conns},
		{"relayfix_messages_deferred_total", 0},
		{"relayfix_messages_bounced_total", 0},
		{`relayfix_messages_failed_total{reason="permanent"}`, 0},
		{`relayfix_messages_refused_total{reason="relay_denied"}`, 0},
		{`relayfix_tracking_restarts_total{reason="crash"}`, 0},
	}
	for _, e := range exact {
		if _, ok := after[e.name]; !ok {
			t.Errorf("%s missing from the scrape", e.name)
			continue
		}
		if d := after[e.name] - before[e.name]; d != e.want {
			t.Errorf("%s advanced by %v, want exactly %v", e.name, d, e.want)
		}
	}
	present := []string{
		fmt.Sprintf(`relayfix_component_info{component="relayd",state="running",version="%s"}`, stamp.RelaydVersion),
		fmt.Sprintf(`relayfix_component_info{component="tracking",state="healthy",version="%s"}`, stamp.TrackFixedVersion),
		fmt.Sprintf(`relayfix_product_info{service_pack="2",version="%s"}`, stamp.ProductVersion),
		`relayfix_component_restart_pending{component="relayd"}`,
		`relayfix_component_restart_pending{component="tracking"}`,
		"relayfix_queue_oldest_message_age_seconds", "relayfix_spool_bytes", "relayfix_tracking_journal_backlog_events",
		"process_resident_memory_bytes", "go_goroutines",
	}
	for _, p := range present {
		if _, ok := after[p]; !ok {
			t.Errorf("%s missing from the scrape", p)
		}
	}
	if after[`relayfix_component_restart_pending{component="tracking"}`] != 0 {
		t.Errorf("restart pending while the installed build runs")
	}
	// The spool gives a delivered message's space back within seconds, so once all n are
	// delivered it may hold nothing at all; it can never hold less.
	if after["relayfix_spool_bytes"] < 0 {
		t.Errorf("spool bytes %v after %d messages", after["relayfix_spool_bytes"], n)
	}

	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// A restart asked for over the control socket counts as requested, not as a crash; a
	// tracking file that is not the running build makes a restart pending.
	if _, err := r.Ctl.RestartComponent(t.Context(), "tracking"); err != nil {
		t.Fatal(err)
	}
	relaytest.Install(t, root, stamp.ProductVersion, 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: stamp.RelaydVersion, Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: stamp.TrackPrefixVersion, Package: "SP2"})
	last, _ := scrape(t, addr)
	for name, want := range map[string]float64{
		`relayfix_tracking_restarts_total{reason="requested"}`:     after[`relayfix_tracking_restarts_total{reason="requested"}`] + 1,
		`relayfix_tracking_restarts_total{reason="crash"}`:         after[`relayfix_tracking_restarts_total{reason="crash"}`],
		`relayfix_component_restart_pending{component="tracking"}`: 1,
		`relayfix_component_restart_pending{component="relayd"}`:   0,
	} {
		if got := last[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestAlertRules checks deploy/'s rules and scrape configuration with promtool, and runs the
// rules' unit tests (each alert fires on its series and not on a healthy relay's).
func TestAlertRules(t *testing.T) {
	promtool := relaytest.Tool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = "../../deploy"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
