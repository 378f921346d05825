package trackjournal

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relayfix/relay/track"
)

func readAll(t *testing.T, r *Reader) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		evs, err := r.Next(context.Background(), 100, 5*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return seqs
		}
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
	}
}

func TestJournalAppendReadTrimReopen(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		seq, err := j.Append(track.Event{ID: track.EventReceived, QueueID: "Q", Time: time.Unix(int64(i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", seq, i+1)
		}
	}
	if got := readAll(t, j.NewReader(1)); len(got) != 0 {
		t.Fatalf("events visible before Sync: %v", got)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, j.NewReader(4)); len(got) != 7 || got[0] != 4 || got[6] != 10 {
		t.Fatalf("read from 4: %v", got)
	}
	if err := j.Trim(6); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn append at the end is cut off on reopen.
	seg := filepath.Join(dir, segmentName(1))
	f, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":11,"queue`)
	f.Close()
	j, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Acked() != 6 || j.Last() != 10 {
		t.Fatalf("reopened: acked %d last %d, want 6 and 10", j.Acked(), j.Last())
	}
	if seq, _ := j.Append(track.Event{QueueID: "R"}); seq != 11 {
		t.Fatalf("next seq after reopen %d, want 11", seq)
	}
	j.Sync()
	if got := readAll(t, j.NewReader(j.Acked()+1)); len(got) != 5 || got[0] != 7 || got[4] != 11 {
		t.Fatalf("replay after reopen: %v", got)
	}
}

func TestJournalSegmentsFollowAndTrim(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	r := j.NewReader(1)
	defer r.Close()
	big := track.Event{QueueID: "Q", Reply: string(make([]byte, 64<<10))}
	const n = 300 // ~19 MiB: three segments
	done := make(chan []uint64)
	go func() {
		var got []uint64
		for len(got) < n {
			evs, err := r.Next(context.Background(), 50, time.Second)
			if err != nil {
				t.Error(err)
				break
			}
			for _, ev := range evs {
				got = append(got, ev.Seq)
			}
		}
		done <- got
	}()
	for i := range n {
		if _, err := j.Append(big); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			j.Sync()
		}
	}
	j.Sync()
	got := <-done
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("reader saw seq %d at %d: not in order", s, i)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.jnl"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	if err := j.Trim(n); err != nil {
		t.Fatal(err)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "*.jnl"))
	if len(segs) != 1 {
		t.Fatalf("after trimming everything %d segments remain, want the active one", len(segs))
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j, err := Open(b.TempDir(), nil)
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

// TestJournalReadersSeeOnlySynced: events written because much was waiting, but not yet synced,
// stay invisible to readers until Sync, so the plugin never records an event a crash could take
// back.
func TestJournalReadersSeeOnlySynced(t *testing.T) {
	j, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	big := track.Event{QueueID: "Q", Reply: string(make([]byte, 4<<10))}
	n := pendLimit/len(big.Reply) + 10 // past pendLimit: Append writes, without syncing
	for range n {
		if _, err := j.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(filepath.Join(j.dir, segmentName(1))); st == nil || st.Size() == 0 {
		t.Fatal("nothing written past pendLimit")
	}
	r := j.NewReader(1)
	defer r.Close()
	if got := readAll(t, r); len(got) != 0 {
		t.Fatalf("%d events visible before Sync", len(got))
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != n || got[0] != 1 || got[n-1] != uint64(n) {
		t.Fatalf("after Sync read %d events, want %d in order", len(got), n)
	}
}

// TestCloseWritesAckedOnlyWhenItMoved: a journal whose acknowledged position did not move since
// Open writes nothing at Close (a relay with tracking off on a full disk must not fail), and a
// failed write of the position is a warning, not an error.
func TestCloseWritesAckedOnlyWhenItMoved(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acked")); !os.IsNotExist(err) {
		t.Fatalf("Close with nothing acknowledged wrote acked: %v", err)
	}

	var logged bytes.Buffer
	j, err = Open(dir, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		j.Append(track.Event{QueueID: "Q"})
	}
	j.Sync()
	j.Trim(2)
	// acked cannot be replaced: a directory stands in its place, as a full disk would refuse it.
	if err := os.Mkdir(filepath.Join(dir, "acked"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "acked", "x"), nil, 0o600)
	if err := j.Close(); err != nil {
		t.Fatalf("Close = %v, want nil when only the acked position could not be written", err)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "acked") {
		t.Fatalf("no warning logged: %q", logged.String())
	}
	os.RemoveAll(filepath.Join(dir, "acked"))
	j, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Acked() != 0 || j.Last() != 3 {
		t.Fatalf("after a lost acked: acked %d last %d, want 0 and 3 (replay all)", j.Acked(), j.Last())
	}
}

// TestSyncedFollowsTheDisk checks that Synced reports an event only once an fsync covered it,
// whether the flusher's Sync or a new segment's rotation made it durable, and that its channel
// tells the waiter, and that a reopened journal reports what it found on disk.
func TestSyncedFollowsTheDisk(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := track.Event{ID: track.EventDelivered, QueueID: "Q", Time: time.Unix(1, 0)}
	seq, err := j.Append(ev)
	if err != nil {
		t.Fatal(err)
	}
	synced, changed := j.Synced()
	if synced >= seq {
		t.Fatalf("Synced %d before any fsync, appended %d", synced, seq)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Sync made an event durable and did not close Synced's channel")
	}
	if synced, _ = j.Synced(); synced != seq {
		t.Fatalf("Synced %d after Sync, want %d", synced, seq)
	}

	// A rotation syncs the old segment: what it held is durable without a Sync.
	big := ev
	big.Reply = string(make([]byte, 64<<10))
	var last uint64
	for j.segs[len(j.segs)-1].first <= seq {
		if last, err = j.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	if synced, _ = j.Synced(); synced != last-1 {
		t.Fatalf("Synced %d after a rotation, want %d (all but the event that started the new segment)", synced, last-1)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if synced, _ = j.Synced(); synced != last {
		t.Fatalf("Synced %d after reopening, want %d", synced, last)
	}
}
