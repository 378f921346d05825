package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func ids(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Envelope.ID)
	}
	slices.Sort(out)
	return out
}

// segmentFiles returns the spool's segment numbers on disk.
func segmentFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	s := &Spool{dir: dir}
	seqs, err := s.list()
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestHandover runs an old and a new process's spools side by side, as a live upgrade does: both
// take messages, the old one removes and adds while the new one waits, and the new one adopts
// exactly what the old one left live. No file is written by both.
func TestHandover(t *testing.T) {
	dir := t.TempDir()
	old, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, old, "M1", "one")
	put(t, old, "M2", "two")
	oldSegs := segmentFiles(t, dir)

	heir, msgs, err := Open(dir, Options{Successor: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("a successor knows %d messages before the handover", len(msgs))
	}
	if _, _, err := Open(dir, Options{Successor: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second successor: err = %v, want ErrLocked", err)
	}
	if g := heir.Generation(); g != old.Generation()+1 {
		t.Fatalf("successor generation %d, old %d", g, old.Generation())
	}
	b3 := put(t, heir, "N3", "three")
	// The old process goes on: a removal and a new message, after the successor opened.
	if err := old.Remove("M1"); err != nil {
		t.Fatal(err)
	}
	put(t, old, "M4", "four")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = heir.Adopt(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Adopt while the old spool is open: err = %v, want a deadline", err)
	}
	for _, seq := range segmentFiles(t, dir) {
		if seq >= heir.base && slices.Contains(oldSegs, seq) {
			t.Fatalf("segment %x written by both", seq)
		}
	}
	old.Close()

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adopted, err := heir.Adopt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(adopted), []string{"M2", "M4"}; !slices.Equal(got, want) {
		t.Fatalf("adopted %v, want %v", got, want)
	}
	for _, m := range adopted {
		if got := read(t, heir, m.Body); got != "Received: test\r\n"+map[string]string{"M2": "two", "M4": "four"}[m.Envelope.ID] {
			t.Fatalf("body of adopted %s = %q", m.Envelope.ID, got)
		}
	}
	if got := read(t, heir, b3); got != "Received: test\r\nthree" {
		t.Fatalf("body of N3 = %q", got)
	}
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a plain start beside the adopted spool: err = %v, want ErrLocked", err)
	}
	// The next upgrade's successor can open it beside this one.
	next, _, err := Open(dir, Options{Successor: true})
	if err != nil {
		t.Fatalf("the next successor: %v", err)
	}
	if g := next.Generation(); g != heir.Generation()+1 {
		t.Fatalf("next successor generation %d, want %d", g, heir.Generation()+1)
	}
	next.Close()
	if err := heir.Remove("M2"); err != nil {
		t.Fatal(err)
	}
	heir.Close()

	s, msgs, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := ids(msgs), []string{"M4", "N3"}; !slices.Equal(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
}

// TestHandoverAfterCrash: the old process dies without closing; the successor adopts all it had
// acknowledged.
func TestHandoverAfterCrash(t *testing.T) {
	dir := t.TempDir()
	old, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, old, "M1", "one")
	heir, _, err := Open(dir, Options{Successor: true})
	if err != nil {
		t.Fatal(err)
	}
	defer heir.Close()
	put(t, old, "M2", "two")
	// A crash: the lock goes with the process, nothing else is tidied.
	old.lock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adopted, err := heir.Adopt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(adopted), []string{"M1", "M2"}; !slices.Equal(got, want) {
		t.Fatalf("adopted %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "lock.next")); err != nil {
		t.Fatal(err)
	}
}
