package crashlog

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type node struct{ next *node }

//go:noinline
func depth(n *node) int { return 1 + depth(n.next) }

// TestHelperProcess is not a test: run by TestParseRealPanic, it crashes the way a plugin does.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("CRASHLOG_HELPER") != "1" {
		return
	}
	go func() { depth(&node{}) }()
	select {}
}

func TestParseRealPanic(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "CRASHLOG_HELPER=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper did not crash: %v", err)
	}
	// Feed it in odd-sized pieces, as a pipe delivers it.
	var tail Tail
	b := stderr.Bytes()
	for len(b) > 0 {
		n := min(7, len(b))
		tail.Write(b[:n])
		b = b[n:]
	}
	sig, ok := tail.Signature()
	want := "nil pointer dereference in relayfix/relay/crashlog.depth"
	if !ok || sig.String() != want {
		t.Fatalf("signature %q (%v), want %q; stderr:\n%s", sig, ok, want, stderr.String())
	}
}

// The tracking plugin's pre-fix crash, as the service pack 2 build prints it.
const prefixCrash = `2026-12-01T13:02:11.123Z [DEBUG] plugin started
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x7b2f4e]

goroutine 7 [running]:
relayfix/relay/trackplugin.recordsFor(...)
	/src/relay/trackplugin/prefix.go:110
relayfix/relay/trackplugin.(*asyncTracker).work(0xc0000b2000)
	/src/relay/trackplugin/prefix.go:68 +0x1ce
created by relayfix/relay/trackplugin.newAsync in goroutine 1
	/src/relay/trackplugin/prefix.go:30 +0x1a5
`

func TestParse(t *testing.T) {
	tests := []struct {
		name, stderr string
		want         string
		ok           bool
	}{
		{"pre-fix tracking", prefixCrash, "nil pointer dereference in relayfix/relay/trackplugin.recordsFor", true},
		{"innermost frame is the library's", `panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
strings.Repeat(...)
	/go/src/strings/strings.go:10
relayfix/relay/tracklog.(*Writer).Write(0xc0000b2000, {0x0, 0x0})
	/src/relay/tracklog/writer.go:50 +0x1ce
main.main()
`, "index out of range in relayfix/relay/tracklog.(*Writer).Write", true},
		{"own panic value", "panic: queue 4F2A is gone\n\ngoroutine 9 [running]:\nrelayfix/relay/queue.(*Queue).take(0x1)\n\t/x.go:1\n", "panic in relayfix/relay/queue.(*Queue).take", true},
		{"fatal error", "fatal error: concurrent map writes\n\ngoroutine 5 [running]:\nrelayfix/relay/trackplugin.(*fixed).Track({0x1})\n", "concurrent map writes in relayfix/relay/trackplugin.(*fixed).Track", true},
		{"nil map", "panic: assignment to entry in nil map\n\ngoroutine 5 [running]:\nrelayfix/x.f()\n", "assignment to entry in nil map in relayfix/x.f", true},
		{"no frame of ours in the panicking goroutine", "panic: runtime error: slice bounds out of range [:9] with capacity 3\n\ngoroutine 5 [running]:\nbytes.f()\n\ngoroutine 6 [select]:\nrelayfix/x.g()\n", "slice bounds out of range", true},
		{"created-by line is not a frame", "panic: boom\n\ngoroutine 5 [running]:\nfmt.f()\ncreated by relayfix/x.start in goroutine 1\n", "panic", true},
		{"clean exit", "2026-12-01 plugin stopping\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, ok := Parse(tt.stderr)
			if ok != tt.ok || sig.String() != tt.want {
				t.Errorf("Parse = %q, %v; want %q, %v", sig, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestTailBounded(t *testing.T) {
	var tail Tail
	tail.Write([]byte("noise\n" + strings.Repeat("x", 10000) + "\npanic: boom\n"))
	for range 10 * maxLines {
		tail.Write([]byte("runtime.f()\n"))
	}
	if len(tail.lines) > maxLines {
		t.Errorf("kept %d lines", len(tail.lines))
	}
	if sig, ok := tail.Signature(); !ok || sig.Kind != "panic" {
		t.Errorf("signature %v %v", sig, ok)
	}
}

func TestStoreRecordsDurably(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool", "tracking", "crashes.json")
	s := Open(path)
	sig, _ := Parse(prefixCrash)
	t0 := time.Date(2026, 12, 1, 13, 2, 11, 0, time.UTC)
	for i := range 14 {
		if err := s.Record(Crash{Component: "tracking", Program: "msgtrack", Build: "6.5.7638.1", Signature: sig}, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	other := Signature{Kind: "index out of range", Frame: "relayfix/relay/tracklog.(*Writer).Write"}
	if err := s.Record(Crash{Component: "tracking", Program: "msgtrack", Build: "6.5.7651.45", Signature: other}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// What a restarted relay (or hotfix check) reads back.
	rs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(rs), rs)
	}
	r := rs[0]
	if r.Signature != "nil pointer dereference in relayfix/relay/trackplugin.recordsFor" || r.Count != 14 || r.Build != "6.5.7638.1" ||
		!r.First.Equal(t0) || !r.Last.Equal(t0.Add(13*time.Minute)) || r.Program != "msgtrack" {
		t.Errorf("record %+v", r)
	}
	again := Open(path)
	if err := again.Record(Crash{Component: "tracking", Program: "msgtrack", Build: "6.5.7638.1", Signature: sig}, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rs, _ := again.Records(); rs[0].Count != 15 {
		t.Errorf("count after reopening: %d, want 15", rs[0].Count)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestStoreSurvivesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crashes.json")
	os.WriteFile(path, []byte("{not json"), 0o644)
	s := Open(path)
	if err := s.Record(Crash{Component: "tracking", Signature: Signature{Kind: "panic"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if rs, err := Load(path); err != nil || len(rs) != 1 {
		t.Errorf("after a corrupt file: %v %v", rs, err)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Errorf("corrupt file not kept aside: %v", err)
	}
}

// FuzzTail feeds arbitrary stderr, as a broken or hostile plugin could write, in two pieces: it
// must not panic, must keep its bound, and a signature it finds names a frame of this module's
// code or none.
func FuzzTail(f *testing.F) {
	f.Add(prefixCrash, 10)
	f.Add("panic: x\ngoroutine 1 [running]:\nrelayfix/a.(", 3)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		var tail Tail
		cut = min(max(cut, 0), len(s))
		tail.Write([]byte(s[:cut]))
		tail.Write([]byte(s[cut:]))
		if len(tail.lines) > maxLines {
			t.Fatalf("kept %d lines", len(tail.lines))
		}
		if sig, ok := tail.Signature(); ok && sig.Frame != "" && !strings.HasPrefix(sig.Frame, Module) {
			t.Fatalf("frame %q is not this module's", sig.Frame)
		}
	})
}
