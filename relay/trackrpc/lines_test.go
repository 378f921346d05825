package trackrpc

import (
	"bytes"
	"reflect"
	"strconv"
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
		line := AppendEvent(nil, ev)
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("event %d encodes to more than one line: %q", ev.Seq, line)
		}
		got, err := ParseEvent(line[:len(line)-1])
		if err != nil {
			t.Fatalf("event %d: %v", ev.Seq, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("event %d:\n got %+v %+v\nwant %+v %+v", ev.Seq, got, got.Props, ev, ev.Props)
		}
	}
	for _, bad := range []string{"", "e1\t1", "x1\t1\t\t1019\tQ\t\t\t\t\t0", "e1\t1\t\t1019\tQ\t\t\t\t\t1", "e1\tz\t\t1019\tQ\t\t\t\t\t0"} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%q) = nil error", bad)
		}
	}
}

func TestLines(t *testing.T) {
	now := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	var data []byte
	for seq := uint64(41); seq < 44; seq++ {
		data = AppendEvent(data, track.Event{Seq: seq, Time: now, ID: track.EventQueued, QueueID: "Q\t",
			Props: &track.Properties{QueueID: "Q\t", Recipients: []string{"a@x", "b@x"}}})
	}
	evs, err := ParseLines(data)
	if err != nil || len(evs) != 3 {
		t.Fatalf("ParseLines = %d events, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(41+i) || ev.QueueID != "Q\t" || len(ev.Props.Recipients) != 2 {
			t.Errorf("event %d = %+v %+v", i, ev, ev.Props)
		}
		line, _, _ := bytes.Cut(data[bytes.Index(data, []byte("e1\t"+strconv.Itoa(41+i))):], []byte{'\n'})
		if seq, err := LineSeq(line); err != nil || seq != ev.Seq {
			t.Errorf("LineSeq(%q) = %d, %v", line, seq, err)
		}
	}
	if _, err := ParseLines(data[:len(data)-1]); err == nil {
		t.Error("ParseLines accepted a torn last line")
	}
	for _, bad := range []string{"", "e1\t", "e1\t\t", "x1\t1\t", "e1\t1x\t", "e1\t99999999999999999999\t"} {
		if seq, err := LineSeq([]byte(bad)); err == nil {
			t.Errorf("LineSeq(%q) = %d, nil error", bad, seq)
		}
	}
}

func BenchmarkParseLines(b *testing.B) {
	p := &track.Properties{QueueID: "HOMCS2WL56", MessageID: "<1.load@example.test>", Sender: "load@example.test",
		Recipients: []string{"dst@sink.invalid"}, Size: 1400, Subject: "load message 1", ClientIP: "127.0.0.1", Received: time.Now()}
	var data []byte
	for seq := range uint64(256) {
		data = AppendEvent(data, track.Event{Seq: seq + 1, Time: time.Now(), ID: track.EventQueued, QueueID: p.QueueID, Props: p})
	}
	for b.Loop() {
		if _, err := ParseLines(data); err != nil {
			b.Fatal(err)
		}
	}
}
