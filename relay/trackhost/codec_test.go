package trackhost

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"relayfix/relay/track"
)

func TestEventCodecRoundTrip(t *testing.T) {
	now := time.Date(2006, 2, 14, 3, 36, 0, 123456789, time.UTC)
	tests := []track.Event{
		{Seq: 1, Time: now, ID: track.EventReceived, QueueID: "Q1"},
		{Seq: 2, Time: now, ID: track.EventDeferred, QueueID: "Q1", Recipient: "a@b", Partner: "10.0.0.1:25",
			Reply: "451 4.3.0 try\tlater\r\nplease \\ now", NextTry: now.Add(time.Minute)},
		{Seq: 3, Time: now, ID: track.EventQueued, QueueID: "Q2", Props: &track.Properties{
			QueueID: "Q2", MessageID: "<m@x>", Sender: "", Recipients: []string{"a@x", "b\t@x"}, Size: 99040,
			Subject: "line1\nline2\\", ClientIP: "127.0.0.1", ClientName: "c", Helo: "h", Server: "s", Received: now}},
		{Seq: 4, Time: now, ID: track.EventQueued, QueueID: "Q3", Props: &track.Properties{QueueID: "Q3", Recipients: []string{}}},
	}
	for _, ev := range tests {
		line := appendEvent(nil, ev)
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("event %d encodes to more than one line: %q", ev.Seq, line)
		}
		got, err := parseEvent(line[:len(line)-1])
		if err != nil {
			t.Fatalf("event %d: %v", ev.Seq, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("event %d:\n got %+v %+v\nwant %+v %+v", ev.Seq, got, got.Props, ev, ev.Props)
		}
	}
	for _, bad := range []string{"", "e1\t1", "x1\t1\t\t1019\tQ\t\t\t\t\t0", "e1\t1\t\t1019\tQ\t\t\t\t\t1", "e1\tz\t\t1019\tQ\t\t\t\t\t0"} {
		if _, err := parseEvent([]byte(bad)); err == nil {
			t.Errorf("parseEvent(%q) = nil error", bad)
		}
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j, err := OpenJournal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	p := &track.Properties{QueueID: "HOMCS2WL56", MessageID: "<1.load@example.test>", Sender: "load@example.test",
		Recipients: []string{"dst@sink.invalid"}, Size: 1400, Subject: "load message 1", ClientIP: "127.0.0.1", Received: time.Now()}
	ev := track.Event{Time: time.Now(), ID: track.EventQueued, QueueID: p.QueueID, Props: p}
	for i := 0; b.Loop(); i++ {
		j.Append(ev)
		if i%256 == 0 {
			j.Sync()
		}
	}
}
