package tracklog

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"relayfix/relay/track"
)

func TestEscapeRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		subject string
	}{
		{"plain", "hello world"},
		{"tab", "a\tb"},
		{"newline", "line one\nline two"},
		{"crlf", "x\r\ny"},
		{"backslash", `C:\path\to`},
		{"backslash-t literal", `\t is not a tab`},
		{"trailing backslash", `ends with \`},
		{"empty", ""},
		{"utf8", "Grüße – ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Record{
				Time: time.Date(2026, 11, 29, 23, 59, 59, 123456000, time.UTC), EventID: track.EventReceived,
				Subject: tt.subject, Sender: "a@b.example", Recipient: "c@d.example", QueueID: "Q1", Seq: 7,
				Origination: time.Date(2026, 11, 29, 23, 59, 58, 0, time.UTC), TotalBytes: 42, NumRecipients: 1,
			}
			line := string(r.AppendLine(nil))
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("line %q is not exactly one line", line)
			}
			if n := strings.Count(line, "\t"); n != len(fieldNames)-1 {
				t.Fatalf("line has %d tabs, want %d: %q", n, len(fieldNames)-1, line)
			}
			got, err := ParseLine(strings.TrimSuffix(line, "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

func TestParseLineRejects(t *testing.T) {
	good := strings.TrimSuffix(string(Record{Time: time.Unix(0, 0), EventID: 1019, QueueID: "Q", Seq: 1}.AppendLine(nil)), "\n")
	for _, bad := range []string{
		"",
		"too\tfew",
		good + "\textra",
		strings.Replace(good, "\t1019\t", "\tx\t", 1),
		strings.Replace(good, "Q", `Q\`, 1),
		strings.Replace(good, "Q", `Q\z`, 1),
	} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) = nil error", bad)
		}
	}
	if _, err := ParseLine(good); err != nil {
		t.Fatalf("good line: %v", err)
	}
}

func TestFromEventPerRecipient(t *testing.T) {
	props := &track.Properties{QueueID: "Q", Sender: "s@x", Recipients: []string{"a@x", "b@x"}, Size: 10,
		Subject: "s", MessageID: "<m@x>", Received: time.Unix(100, 0)}
	ev := track.Event{Seq: 5, Time: time.Unix(101, 0), ID: track.EventReceived, QueueID: "Q"}
	recs := FromEvent(ev, props, "6.5.7651.45")
	if len(recs) != 2 || recs[0].Recipient != "a@x" || recs[1].Recipient != "b@x" {
		t.Fatalf("message-level event: %+v", recs)
	}
	for _, r := range recs {
		if r.NumRecipients != 2 || r.Sender != "s@x" || r.Seq != 5 || r.ServiceVersion != "6.5.7651.45" {
			t.Errorf("record %+v", r)
		}
	}
	ev.ID, ev.Recipient = track.EventDelivered, "b@x"
	if recs := FromEvent(ev, props, ""); len(recs) != 1 || recs[0].Recipient != "b@x" {
		t.Fatalf("per-recipient event: %+v", recs)
	}
	if recs := FromEvent(ev, nil, ""); len(recs) != 1 || recs[0].Sender != "" || recs[0].QueueID != "Q" {
		t.Fatalf("handle only: %+v", recs)
	}
}

// clock is a settable clock for the writer.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestWriterRotatesAtUTCMidnight(t *testing.T) {
	dir := t.TempDir()
	// 23:59:59.9 UTC is already the next day in UTC+1; the file must follow UTC.
	loc := time.FixedZone("UTC+1", 3600)
	c := &clock{time.Date(2026, 11, 29, 23, 59, 59, 900e6, time.UTC).In(loc)}
	w := NewWriter(dir, "relayfix msgtrack test", c.now)
	defer w.Close()
	rec := func(seq uint64) Record {
		return Record{Time: c.t, EventID: track.EventQueued, QueueID: "Q", Seq: seq, Recipient: "r@x"}
	}
	if err := w.Write([]Record{rec(1), rec(2)}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(200 * time.Millisecond) // 00:00:00.1 UTC, 30 Nov
	if err := w.Write([]Record{rec(3)}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]uint64{"20261129.log": {1, 2}, "20261130.log": {3}}
	for name, seqs := range want {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "#Software: relayfix msgtrack test\n#Version: 1\n#Date: ") ||
			!strings.Contains(string(b), "#Fields: date\ttime\tclient-ip\t") {
			t.Errorf("%s header:\n%s", name, b)
		}
		recs, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		if !reflect.DeepEqual(got, seqs) {
			t.Errorf("%s holds seqs %v, want %v", name, got, seqs)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 2 {
		t.Errorf("files %v, want 2", files)
	}
}

func TestWriterRepairsTornTail(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	w := NewWriter(dir, "x", c.now)
	if err := w.Write([]Record{{Time: c.t, QueueID: "A", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(dir, FileName(c.t))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2026-01-02\t03:04:05.000000 GMT\ttorn") // a write cut short by a crash
	f.Close()
	w = NewWriter(dir, "x", c.now)
	defer w.Close()
	if err := w.Write([]Record{{Time: c.t, QueueID: "B", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].QueueID != "A" || recs[1].QueueID != "B" {
		t.Fatalf("records after torn tail: %+v", recs)
	}
}

func TestSearch(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)}
	w := NewWriter(dir, "x", c.now)
	defer w.Close()
	base := c.t
	props := func(q, from, to, id string) *track.Properties {
		return &track.Properties{QueueID: q, Sender: from, Recipients: []string{to}, MessageID: id, Received: base}
	}
	pa := props("QA", "alice@x.example", "bob@y.example", "<a1@x.example>")
	pb := props("QB", "carol@x.example", "bob@y.example", "<b1@x.example>")
	evs := []struct {
		ev track.Event
		p  *track.Properties
	}{
		{track.Event{Seq: 1, Time: base, ID: track.EventReceived, QueueID: "QA"}, pa},
		{track.Event{Seq: 2, Time: base.Add(time.Millisecond), ID: track.EventReceived, QueueID: "QB"}, pb},
		{track.Event{Seq: 3, Time: base.Add(2 * time.Millisecond), ID: track.EventQueued, QueueID: "QA"}, pa},
		{track.Event{Seq: 4, Time: base.Add(3 * time.Millisecond), ID: track.EventQueued, QueueID: "QB"}, pb},
		{track.Event{Seq: 5, Time: base.Add(4 * time.Millisecond), ID: track.EventDelivered, QueueID: "QA", Recipient: "bob@y.example"}, pa},
		{track.Event{Seq: 6, Time: base.Add(5 * time.Millisecond), ID: track.EventDeferred, QueueID: "QB", Recipient: "bob@y.example"}, pb},
	}
	// The first half is written on the 29th, the rest after midnight, and events 3 and 4 are
	// written twice, as a replay after a plugin crash does.
	for i, e := range evs {
		if i == 3 {
			c.t = c.t.Add(2 * time.Minute)
		}
		recs := FromEvent(e.ev, e.p, "v")
		if i == 3 || i == 4 {
			recs = append(recs, FromEvent(evs[i-1].ev, evs[i-1].p, "v")...)
		}
		if err := w.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		q    Query
		want []uint64
	}{
		{"message id", Query{MessageID: "<a1@x.example>"}, []uint64{1, 3, 5}},
		{"message id without brackets, other case", Query{MessageID: "A1@X.example"}, []uint64{1, 3, 5}},
		{"sender", Query{Sender: "carol@x.example"}, []uint64{2, 4, 6}},
		{"recipient", Query{Recipient: "BOB@y.example"}, []uint64{1, 2, 3, 4, 5, 6}},
		{"recipient and queue id", Query{Recipient: "bob@y.example", QueueID: "QB"}, []uint64{2, 4, 6}},
		{"no match", Query{Sender: "nobody@x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := Search(dir, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, r := range recs {
				got = append(got, r.Seq)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("seqs %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAppendLineLayout pins the columns of a line, field by field, as the README documents them.
func TestAppendLineLayout(t *testing.T) {
	r := Record{
		Time: time.Date(2026, 11, 29, 18, 40, 1, 5000, time.UTC), ClientIP: "192.0.2.1", ClientHostname: "mx.example",
		PartnerName: "hop", ServerHostname: "relay", ServerIP: "192.0.2.2", Recipient: "c@d.example",
		EventID: track.EventDelivered, MessageID: "<m@x>", Priority: 1, ReportStatus: "250 ok\tthere",
		TotalBytes: 1024, NumRecipients: 2, Origination: time.Date(2026, 11, 29, 18, 40, 0, 0, time.FixedZone("X", 3600)),
		Encryption: "TLS", ServiceVersion: "6.5.7651.45", LinkedMsgID: "L", Subject: `a\b`, Sender: "a@b.example",
		QueueID: "Q1", Seq: 18446744073709551615,
	}
	want := strings.Join([]string{"2026-11-29", "18:40:01.000005 GMT", "192.0.2.1", "mx.example", "hop", "relay",
		"192.0.2.2", "c@d.example", "1031", "<m@x>", "1", `250 ok\tthere`, "1024", "2", "2026-11-29T17:40:00Z",
		"TLS", "6.5.7651.45", "L", `a\\b`, "a@b.example", "Q1", "18446744073709551615"}, "\t") + "\n"
	if got := string(r.AppendLine(nil)); got != want {
		t.Fatalf("line:\n got %q\nwant %q", got, want)
	}
	r.Origination = time.Time{}
	if got := string(r.AppendLine(nil)); !strings.Contains(got, "\t2\t\tTLS\t") {
		t.Fatalf("zero origination-time is not an empty field: %q", got)
	}
}

// TestAppendTimes checks the written-out time formatting against time's own for the layouts.
func TestAppendTimes(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 29, 18, 40, 1, 5000, time.UTC), time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 100, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC),
	}
	for i := range 2000 {
		times = append(times, time.Unix(int64(i)*7919*104729, int64(i)*48271%1000000000).UTC())
	}
	for _, tm := range times {
		if got, want := string(appendDateTime(nil, tm, '\t')), tm.Format(dateLayout)+"\t"+tm.Format(timeLayout); got != want {
			t.Fatalf("appendDateTime(%v) = %q, want %q", tm, got, want)
		}
		if got, want := string(appendOrig(nil, tm)), tm.Format(origLayout); got != want {
			t.Fatalf("appendOrig(%v) = %q, want %q", tm, got, want)
		}
	}
}

// TestWriterKeepsLogsOwnerOnly: the logs name every sender and recipient, so a new log and its
// directory are owner-only, and a directory and file an older build left readable to all are
// tightened as they are opened.
func TestWriterKeepsLogsOwnerOnly(t *testing.T) {
	for _, existing := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "tracking")
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		if existing {
			os.MkdirAll(dir, 0o755)
			os.Chmod(dir, 0o755)
			os.WriteFile(filepath.Join(dir, FileName(now)), []byte(Header("old", now)), 0o644)
		}
		w := NewWriter(dir, "relayfix msgtrack test", func() time.Time { return now })
		if err := w.Write([]Record{{Time: now, QueueID: "Q", Sender: "a@example.com"}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName(now)): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("existing=%t: %s has mode %v, want %v", existing, path, got, want)
			}
		}
	}
}
