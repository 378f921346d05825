package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func put(t *testing.T, s *Spool, id string, body string) Body {
	t.Helper()
	env := &Envelope{ID: id, Sender: "a@example.test", Recipients: []string{"x@example.test", "y@example.test"}, Received: time.Now().UTC()}
	b, err := s.Put(context.Background(), env, []byte("Received: test\r\n"), []byte(body))
	if err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	return b
}

func read(t *testing.T, s *Spool, b Body) string {
	t.Helper()
	r, err := s.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestReopenKeepsLiveMessagesAndState(t *testing.T) {
	dir := t.TempDir()
	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("new spool has %d messages", len(msgs))
	}
	b1 := put(t, s, "M1", "body one")
	put(t, s, "M2", "body two")
	put(t, s, "M3", "body three")
	if got := read(t, s, b1); got != "Received: test\r\nbody one" {
		t.Fatalf("body of M1 = %q", got)
	}
	next := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := s.Update("M3", State{Attempts: 2, NextTry: next, LastError: "451 later", Done: []int{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("M2"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, msgs, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.Envelope.ID)
	}
	if !slices.Equal(ids, []string{"M1", "M3"}) {
		t.Fatalf("after reopen: %v, want [M1 M3]", ids)
	}
	m3 := msgs[1]
	if m3.Envelope.Attempts != 2 || !m3.Envelope.NextTry.Equal(next) || m3.Envelope.LastError != "451 later" || !slices.Equal(m3.Envelope.Done, []int{1}) {
		t.Fatalf("M3 state not restored: %+v", m3.Envelope.State)
	}
	if got := read(t, s, m3.Body); got != "Received: test\r\nbody three" {
		t.Fatalf("body of M3 after reopen = %q", got)
	}
}

func TestTornTailIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "OK1", "complete")
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	last := segs[len(segs)-1]
	// A message cut off in the middle, as a crash during a write leaves it, and a record whose
	// checksum does not match.
	whole := frame(recMessage, []byte{0, 0, 0, 2}, []byte("{}"), []byte("half a message that never got its 250"))
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(whole[:len(whole)/2])
	f.Close()

	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen after torn write: %v", err)
	}
	if len(msgs) != 1 || msgs[0].Envelope.ID != "OK1" {
		t.Fatalf("after torn write: %+v", msgs)
	}
	// The spool keeps working and a later reopen still sees the earlier message.
	put(t, s, "OK2", "after the crash")
	s.Close()
	s, msgs, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(msgs) != 2 || msgs[1].Envelope.ID != "OK2" {
		t.Fatalf("second reopen: %d messages", len(msgs))
	}
}

func TestCorruptRecordStopsSegment(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "A", "first")
	b := put(t, s, "B", "second")
	s.Close()
	// Flip a byte of B's body: its checksum no longer matches.
	f, err := os.OpenFile(filepath.Join(dir, segName(b.Segment)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'X'}, b.Offset+b.Length-1)
	f.Close()
	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(msgs) != 1 || msgs[0].Envelope.ID != "A" {
		t.Fatalf("got %d messages, want only A", len(msgs))
	}
}

func TestSegmentsAreCollected(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{SegmentSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	body := string(make([]byte, 1000))
	for i := range 100 {
		id := fmt.Sprintf("G%03d", i)
		put(t, s, id, body)
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	put(t, s, "LAST", "x") // makes the committer write the removals and collect
	if n := s.Segments(); n > 3 {
		t.Fatalf("%d segments left after every message but one was removed", n)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(segs) > 3 {
		t.Fatalf("%d segment files on disk", len(segs))
	}
	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(msgs) != 1 || msgs[0].Envelope.ID != "LAST" {
		t.Fatalf("after collection: %d messages", len(msgs))
	}
}

func TestLiveMessagePinsItsSegment(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{SegmentSize: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "KEEP", "kept while later messages come and go")
	body := string(make([]byte, 1000))
	for i := range 20 {
		id := fmt.Sprintf("T%02d", i)
		put(t, s, id, body)
		s.Remove(id)
	}
	put(t, s, "FLUSH", "x")
	s.Close()
	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.Envelope.ID)
	}
	if !slices.Equal(ids, []string{"KEEP", "FLUSH"}) {
		t.Fatalf("got %v", ids)
	}
	if got := read(t, s, msgs[0].Body); got != "Received: test\r\nkept while later messages come and go" {
		t.Fatalf("KEEP body = %q", got)
	}
}

func TestConcurrentPutsShareCommits(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	bodies := make([]Body, n)
	for i := range n {
		wg.Go(func() { bodies[i] = put(t, s, fmt.Sprintf("C%03d", i), fmt.Sprintf("message %d", i)) })
	}
	wg.Wait()
	for i, b := range bodies {
		if got, want := read(t, s, b), fmt.Sprintf("Received: test\r\nmessage %d", i); got != want {
			t.Fatalf("body %d = %q, want %q", i, got, want)
		}
	}
	s.Close()
	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(msgs) != n {
		t.Fatalf("reopened %d messages, want %d", len(msgs), n)
	}
}

func TestClosedSpoolRefuses(t *testing.T) {
	s, _, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = s.Put(context.Background(), &Envelope{ID: "X"}, nil, []byte("x"))
	if err == nil {
		t.Fatal("put on a closed spool succeeded")
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	s, _, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}

// FuzzOpen feeds arbitrary bytes to the reader as a segment after a valid message: whatever a
// crash or a bad disk leaves, Open must not fail or panic, and must keep the valid message.
func FuzzOpen(f *testing.F) {
	env := []byte(`{"id":"OK","from":"a@x","to":["b@y"]}`)
	var n [4]byte
	n[3] = byte(len(env))
	good := frame(recMessage, n[:], env, []byte("body"))
	f.Add([]byte{})
	f.Add(good[:len(good)-3])
	f.Add(frame(recState, []byte(`{"id":"OK","attempts":2,"done":[7,-1]}`)))
	f.Add(frame(recRemove, []byte("nope")))
	f.Add(frame(recMessage, []byte{0xff, 0xff, 0xff, 0xff}))
	f.Add(frame(recMessage, []byte{0, 0, 0, 2}, []byte("{}")))
	f.Add(frame(9, []byte("unknown type")))
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), append(append([]byte(nil), good...), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		s, msgs, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		found := false
		for _, m := range msgs {
			if m.Envelope.ID == "OK" {
				found = true
			}
			if _, err := s.Open(m.Body); err != nil {
				t.Fatalf("body of %q: %v", m.Envelope.ID, err)
			}
		}
		// Only a valid remove record for OK may take it away.
		if !found && !bytes.Contains(tail, []byte("OK")) {
			t.Fatalf("the valid message was lost; %d messages", len(msgs))
		}
	})
}

// BenchmarkPut measures durable puts of 4 KiB messages by 1, 8 and 32 writers per CPU: with group commit
// the many share their fsyncs.
func BenchmarkPut(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 4096)
	for _, writers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("parallelism=%d", writers), func(b *testing.B) {
			s, _, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var seq atomic.Int64
			b.SetParallelism(writers) // goroutines per GOMAXPROCS
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("B%d", seq.Add(1))
					env := &Envelope{ID: id, Sender: "a@x.test", Recipients: []string{"b@y.test"}}
					if _, err := s.Put(context.Background(), env, nil, body); err != nil {
						b.Error(err)
						return
					}
					s.Remove(id)
				}
			})
		})
	}
}

// Delivered messages give their space back within seconds, however large the segment size:
// the segment is left by age and deleted, and its file closed (a deleted file that stays open
// keeps its space, which the file system's free count shows and a directory listing does not).
func TestDeliveredSpaceComesBackBySegmentAge(t *testing.T) {
	for _, segSize := range []int64{64 << 20, 1 << 30} {
		t.Run(fmt.Sprint(segSize), func(t *testing.T) {
			dir := t.TempDir()
			s, _, err := Open(dir, Options{SegmentSize: segSize, SegmentAge: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			body := string(bytes.Repeat([]byte("x"), 4096))
			for i := range 600 { // 2.4 MB: above the size under which a busy segment stays
				put(t, s, fmt.Sprint("M", i), body)
			}
			for i := range 600 {
				if err := s.Remove(fmt.Sprint("M", i)); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				used, open := spoolBytes(t, dir), openSegments(t, dir)
				if used == 0 && open <= 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 5 s the spool still holds %d bytes in segments, %d segment files open", used, open)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// spoolBytes is the size of the segment files in dir.
func spoolBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && filepath.Ext(e.Name()) == ".log" {
			n += fi.Size()
		}
	}
	return n
}

// openSegments counts this process's open descriptors on segment files of dir, deleted or not.
func openSegments(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && filepath.Dir(target) == dir && filepath.Ext(strings.TrimSuffix(target, " (deleted)")) == ".log" {
			n++
		}
	}
	return n
}
