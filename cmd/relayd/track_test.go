package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/relay/track"
	"relayfix/relay/tracklog"
)

func TestTrackCommand(t *testing.T) {
	root := layout.Root(t.TempDir())
	now := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	w := tracklog.NewWriter(root.TrackingLog(), "relayfix msgtrack 6.5.7651.45", func() time.Time { return now })
	p := &track.Properties{QueueID: "Q1", MessageID: "<m1@x.example>", Sender: "alice@x.example",
		Recipients: []string{"bob@y.example"}, Size: 99040, Subject: "tab\there", Received: now}
	var recs []tracklog.Record
	for i, id := range []track.EventID{track.EventReceived, track.EventQueued, track.EventDelivered} {
		ev := track.Event{Seq: uint64(i + 1), Time: now.Add(time.Duration(i) * time.Millisecond), ID: id, QueueID: "Q1"}
		if id == track.EventDelivered {
			ev.Recipient, ev.Partner, ev.Reply = "bob@y.example", "127.0.0.1:25", "250 ok"
		}
		recs = append(recs, tracklog.FromEvent(ev, p, "6.5.7651.45")...)
	}
	if err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	w.Close()

	tests := []struct {
		name string
		args []string
		code int
		out  []string // substrings of stdout, in order
	}{
		{"by message id", []string{"--message-id", "m1@x.example"}, 0,
			[]string{"DATE\tTIME (UTC)", "2006-02-14\t03:36:00.000\t1019 received", "1020 queued", "1031 delivered\tQ1\talice@x.example\tbob@y.example\t127.0.0.1:25\t250 ok"}},
		{"by sender", []string{"--sender", "ALICE@x.example"}, 0, []string{"1019 received", "1031 delivered"}},
		{"by recipient and queue id", []string{"--recipient", "bob@y.example", "--queue-id", "Q1"}, 0, []string{"1019", "1020", "1031"}},
		{"no match", []string{"--sender", "nobody@x.example"}, 1, nil},
		{"no selector", nil, 2, nil},
		{"stray argument", []string{"--sender", "a", "extra"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"track", "--root", string(root)}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			rest := out.String()
			for _, want := range tt.out {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", want, out.String())
				}
				rest = rest[i+len(want):]
			}
		})
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"track", "--root", string(root), "--message-id", "<m1@x.example>", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var got []tracklog.Record
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if len(got) != 3 || got[0].EventID != track.EventReceived || got[2].EventID != track.EventDelivered ||
		got[0].Subject != "tab\there" || got[2].TotalBytes != 99040 {
		t.Fatalf("--json records: %+v", got)
	}
}
