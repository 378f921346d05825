package tracklog

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"relayfix/relay/track"
)

// countingFS records which files a search opens.
type countingFS struct {
	fs.FS
	mu     sync.Mutex
	opened []string
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.mu.Lock()
	if name != "." {
		c.opened = append(c.opened, name)
	}
	c.mu.Unlock()
	return c.FS.Open(name)
}

// sixtyDays writes one record at noon of each of 60 days ending on 2026-11-30 into a day file
// each, and returns the directory.
func sixtyDays(t *testing.T) (string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	last := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := range 60 {
		day := last.AddDate(0, 0, i-59)
		w := NewWriter(dir, "x", func() time.Time { return day })
		if err := w.Write([]Record{{Time: day, EventID: track.EventReceived, QueueID: day.Format("Q0102"), Seq: uint64(i + 1), Recipient: "r@x"}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	return dir, last
}

func TestSearchReadsOnlyDaysInRange(t *testing.T) {
	dir, last := sixtyDays(t)
	day := func(d int) time.Time { return last.AddDate(0, 0, -d) } // noon, d days before the last
	tests := []struct {
		name     string
		q        Query
		wantRecs int
		opened   []string
	}{
		{"since, three days", Query{Since: day(2).Truncate(24 * time.Hour)}, 3,
			[]string{"20261128.log", "20261129.log", "20261130.log"}},
		{"since and until, one day, and the day after for late writes",
			Query{Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, 1,
			[]string{"20261101.log", "20261102.log"}},
		{"until only", Query{Until: time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)}, 1,
			[]string{"20261002.log", "20261003.log"}},
		{"since with limit", Query{Since: day(9).Truncate(24 * time.Hour), Limit: 4}, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfs := &countingFS{FS: os.DirFS(dir)}
			recs, err := SearchFS(cfs, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.wantRecs {
				t.Fatalf("%d records, want %d: %+v", len(recs), tt.wantRecs, recs)
			}
			for _, r := range recs {
				if !tt.q.match(r) {
					t.Errorf("record outside the query: %+v", r)
				}
			}
			if tt.opened != nil && !reflect.DeepEqual(cfs.opened, tt.opened) {
				t.Errorf("opened %v, want %v", cfs.opened, tt.opened)
			}
			if len(cfs.opened) > 10 {
				t.Errorf("opened %d of 60 files", len(cfs.opened))
			}
		})
	}
	// Without a time range every file is read.
	cfs := &countingFS{FS: os.DirFS(dir)}
	if _, err := SearchFS(cfs, Query{Recipient: "r@x"}); err != nil {
		t.Fatal(err)
	}
	if len(cfs.opened) != 60 {
		t.Errorf("unbounded search opened %d files, want 60", len(cfs.opened))
	}
}

func TestSearchFindsLateRecord(t *testing.T) {
	// An event of 23:59:59.9 written after midnight lands in the next day's file.
	ev := time.Date(2026, 11, 29, 23, 59, 59, 900e6, time.UTC)
	fsys := fstest.MapFS{
		"20261130.log": {Data: Record{Time: ev, EventID: track.EventReceived, QueueID: "Q", Seq: 1}.AppendLine(nil)},
	}
	recs, err := SearchFS(fsys, Query{Until: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)})
	if err != nil || len(recs) != 1 {
		t.Fatalf("late record: %v, %v", recs, err)
	}
}

func TestPrune(t *testing.T) {
	dir, last := sixtyDays(t)
	now := last // noon on the 30th
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		window time.Duration
		keep   int // day files left
	}{
		{40 * 24 * time.Hour, 41}, // a day goes once it has wholly passed the window: 21 Oct stays
		{10 * 24 * time.Hour, 11},
		{time.Hour, 1}, // today's file is never removed
	}
	for _, tt := range tests {
		if _, err := Prune(dir, now, tt.window); err != nil {
			t.Fatal(err)
		}
		names, _ := Files(os.DirFS(dir), Query{})
		if len(names) != tt.keep {
			t.Fatalf("window %v: %d files left, want %d: %v", tt.window, len(names), tt.keep, names)
		}
		if names[len(names)-1] != "20261130.log" {
			t.Fatalf("window %v removed today's file", tt.window)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("a file that is not a day log was touched: %v", err)
	}
}

// TestRetainWhileRunning shows that a file that grows old while Retain runs goes at the next
// round, not only at start.
func TestRetainWhileRunning(t *testing.T) {
	dir := t.TempDir()
	old := FileName(time.Now().AddDate(0, 0, -5))
	keep := FileName(time.Now())
	for _, n := range []string{old, keep} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Retain(ctx, dir, 48*time.Hour, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()
	waitGone := func(name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still there", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitGone(old)
	later := FileName(time.Now().AddDate(0, 0, -3)) // appears while Retain runs
	if err := os.WriteFile(filepath.Join(dir, later), []byte("#\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitGone(later)
	names, _ := Files(os.DirFS(dir), Query{})
	if !slices.Equal(names, []string{keep}) {
		t.Fatalf("left %v, want only %s", names, keep)
	}
}

func TestParseBound(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in    string
		upper bool
		want  time.Time
		err   bool
	}{
		{"2026-11-29", false, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-29", true, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-29 18:40", true, time.Date(2026, 11, 29, 18, 40, 0, 0, time.UTC), false},
		{"2026-11-29T18:40:00+01:00", false, time.Date(2026, 11, 29, 17, 40, 0, 0, time.UTC), false},
		{"36h", false, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), false},
		{"-1h", false, time.Time{}, true},
		{"yesterday", false, time.Time{}, true},
		{"2026-13-01", false, time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := ParseBound(tt.in, now, tt.upper)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("ParseBound(%q, upper=%v) = %v, %v; want %v (error %v)", tt.in, tt.upper, got, err, tt.want, tt.err)
		}
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	if recs, err := Tail(filepath.Join(dir, "missing"), 5); err != nil || len(recs) != 0 {
		t.Fatalf("missing dir: %v %v", recs, err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	w := NewWriter(dir, "x", func() time.Time { return now })
	defer w.Close()
	// Enough records that the file is larger than what Tail reads.
	var recs []Record
	for i := range 6000 {
		recs = append(recs, Record{Time: now, EventID: track.EventQueued, QueueID: "Q", Seq: uint64(i + 1), Subject: "a subject long enough to make the lines of this file add up"})
	}
	if err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	got, err := Tail(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range got {
		seqs = append(seqs, r.Seq)
	}
	if !slices.Equal(seqs, []uint64{5996, 5997, 5998, 5999, 6000}) {
		t.Fatalf("tail seqs %v", seqs)
	}
}
