package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/relaytest"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

// writeDays writes a tracking log for each of the 60 days ending today (UTC): one record at noon
// whose queue id is the day, YYYYMMDD. Days for which fifo says so get a named pipe instead of a
// file: opening one for reading blocks until a writer comes, which never does, so a command that
// opens it hangs instead of finishing.
func writeDays(t *testing.T, root layout.Root, fifo func(day time.Time) bool) []time.Time {
	t.Helper()
	dir := root.TrackingLog()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	y, m, d := time.Now().UTC().Date()
	today := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
	var days []time.Time
	for i := 59; i >= 0; i-- {
		day := today.AddDate(0, 0, -i)
		days = append(days, day)
		if fifo != nil && fifo(day) {
			if err := syscall.Mkfifo(filepath.Join(dir, tracklog.FileName(day)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w := tracklog.NewWriter(dir, "relayfix msgtrack test", func() time.Time { return day })
		rec := tracklog.Record{Time: day, EventID: track.EventDelivered, QueueID: day.Format("20060102"),
			Recipient: "bob@y.example", Sender: "alice@x.example", Seq: uint64(60 - i)}
		if err := w.Write([]tracklog.Record{rec}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	return days
}

// TestTrackSinceReadsOnlyTheDaysAsked runs the real relayd track on a root with 60 days of
// logs where every day outside the range asked for (and the day after it, which may hold late
// records) is a named pipe that would hang the command if it were opened.
func TestTrackSinceReadsOnlyTheDaysAsked(t *testing.T) {
	root := relaytest.ShortRoot(t)
	var days []time.Time
	from := func() time.Time { return days[40] }
	days = writeDays(t, root, func(day time.Time) bool {
		i := 59 - int(time.Now().UTC().Sub(day).Hours()/24)
		return i < 40 || i > 44 // days[40..43] asked, days[44] read for late records
	})
	until := days[43].Format("2006-01-02") // a bare date: through that day
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"since and until", []string{"--since", from().Format("2006-01-02"), "--until", until},
			[]string{days[40].Format("20060102"), days[41].Format("20060102"), days[42].Format("20060102"), days[43].Format("20060102")}},
		{"with a limit", []string{"--since", from().Format("2006-01-02"), "--until", until, "--limit", "2"},
			[]string{days[40].Format("20060102"), days[41].Format("20060102")}},
		{"and a selector", []string{"--since", from().Format("2006-01-02") + "T00:00:00Z", "--until", until, "--queue-id", days[42].Format("20060102")},
			[]string{days[42].Format("20060102")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bins.Relayd, append([]string{"track", "--root", string(root), "--json"}, tt.args...)...)
			out, err := cmd.Output()
			if ctx.Err() != nil {
				t.Fatalf("relayd track hung: it opened a day file outside the range")
			}
			if err != nil {
				t.Fatalf("relayd track: %v\n%s", err, out)
			}
			var recs []tracklog.Record
			if err := json.Unmarshal(out, &recs); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.QueueID)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("records of days %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTrackRetainWhileRunning starts relayd on a root with 60 days of logs and a 10-day window:
// the older day files go while relayd runs, the newer ones and relayd stay.
func TestTrackRetainWhileRunning(t *testing.T) {
	root := relaytest.ShortRoot(t)
	days := writeDays(t, root, nil)
	p := relaytest.StartRelayd(t, bins.Relayd, root, "", "--tracking=false", "--track-retain", "240h")
	dir := root.TrackingLog()
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, err := filepath.Glob(filepath.Join(dir, "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		if len(names) <= 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d day files left after 30s, want 11", len(names))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// 10 days back from now (noon or later today) reaches into the 11th day back, whose file stays.
	for i, day := range days {
		_, err := os.Stat(filepath.Join(dir, tracklog.FileName(day)))
		if keep := i >= 49; keep != (err == nil) {
			t.Errorf("%s: kept %v, want %v", tracklog.FileName(day), err == nil, keep)
		}
	}
	if _, err := p.Ctl.Status(t.Context()); err != nil {
		t.Fatalf("relayd not running after pruning: %v", err)
	}
	if !strings.Contains(p.Log(), "removed tracking logs older than the retention window") {
		t.Errorf("relayd did not log the pruning:\n%s", p.Log())
	}
}
