// Package crashlog turns a crashed Go program's stderr into a crash signature, and keeps, durably,
// how often each signature was seen, with which build and when.
//
// A signature is the panic's kind and the innermost frame in this module's own code, e.g.
// "nil pointer dereference in relayfix/relay/trackplugin.recordsFor": stable across builds (no
// addresses, line numbers or goroutine ids) and specific enough to tell one defect from another,
// so that a package manifest can name the crash it fixes and a host can match its own crashes
// against it. The record is a small JSON file, replaced with fsync and rename on every crash:
// crashes are rare, and a record that survives a restart of the relay is what lets an operator
// (or hotfix check) learn about them later.
package crashlog

import (
	"regexp"
	"strings"
	"sync"
)

// Module is the path prefix of this product's own code in stack traces.
const Module = "relayfix"

// maxLines bounds how much of a crash's stderr a Tail keeps: the panic line and the panicking
// goroutine's frames come first, and a deep stack is cut, never the memory.
const maxLines = 400

// Signature identifies a crash.
type Signature struct {
	Kind  string // e.g. "nil pointer dereference", "index out of range", "panic"
	Frame string // innermost function in Module's code, e.g. relayfix/relay/trackplugin.recordsFor
}

func (s Signature) String() string {
	if s.Frame == "" {
		return s.Kind
	}
	return s.Kind + " in " + s.Frame
}

// Tail receives a program's stderr (in pieces of any size) and keeps the lines from the first
// panic or fatal error on. It is safe for concurrent use.
type Tail struct {
	mu      sync.Mutex
	partial string
	lines   []string
	started bool
}

// Write implements io.Writer; it never fails.
func (t *Tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.partial + string(b)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		t.line(s[:i])
		s = s[i+1:]
	}
	if len(s) > 4096 { // a line without end is not a stack frame
		s = ""
	}
	t.partial = s
	return len(b), nil
}

func (t *Tail) line(l string) {
	l = strings.TrimRight(l, "\r")
	if !t.started {
		if !isPanicLine(strings.TrimSpace(l)) {
			return
		}
		t.started = true
	}
	if len(t.lines) < maxLines {
		t.lines = append(t.lines, l)
	}
}

// Signature returns the signature of the crash seen so far, if a panic or fatal error was.
func (t *Tail) Signature() (Signature, bool) {
	t.mu.Lock()
	lines := t.lines
	if t.partial != "" && t.started {
		lines = append(lines[:len(lines):len(lines)], t.partial)
	}
	t.mu.Unlock()
	return Parse(strings.Join(lines, "\n"))
}

func isPanicLine(l string) bool {
	return strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ")
}

// Parse finds the first panic or fatal error in text, a Go program's stderr, and returns its
// signature. A line that go-plugin or a logger prefixed is accepted: everything before "panic: "
// on the line is ignored.
func Parse(text string) (Signature, bool) {
	lines := strings.Split(text, "\n")
	start := -1
	var kind string
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if isPanicLine(l) {
			start, kind = i, panicKind(l)
			break
		}
	}
	if start < 0 {
		return Signature{}, false
	}
	sig := Signature{Kind: kind}
	inGoroutine := false
	for _, l := range lines[start+1:] {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "goroutine ") && strings.HasSuffix(l, ":"):
			if inGoroutine { // the next goroutine's stack: the panicking one had none of ours
				return sig, true
			}
			inGoroutine = true
		case !inGoroutine:
		case strings.HasPrefix(l, Module+"/") || strings.HasPrefix(l, Module+"."):
			if fn := funcName(l); fn != "" {
				sig.Frame = fn
				return sig, true
			}
		}
	}
	return sig, true
}

// funcName strips the argument list from a stack frame line: "pkg.(*T).M(0x1, ...)" gives
// "pkg.(*T).M".
func funcName(l string) string {
	if !strings.HasSuffix(l, ")") {
		return ""
	}
	i := strings.LastIndex(l, "(")
	if i <= 0 {
		return ""
	}
	return l[:i]
}

var (
	brackets = regexp.MustCompile(`\s*\[[^\]]*\]`)
	// afterNumbers cuts what follows the kind in runtime messages that carry values, such as
	// "index out of range [5] with length 3" or "makeslice: len out of range".
	withValue = regexp.MustCompile(`\s+with (length|capacity) .*$`)
)

// panicKind gives the kind of a panic from its first line, without the values in it. A panic
// with a value of the program's own (panic(err), panic("...")) has the kind "panic": its text is
// data, not a defect's name.
func panicKind(l string) string {
	if rest, ok := strings.CutPrefix(l, "fatal error: "); ok {
		return clean(rest)
	}
	rest := strings.TrimPrefix(l, "panic: ")
	rest = strings.TrimSuffix(rest, " [recovered]")
	switch {
	case strings.HasPrefix(rest, "runtime error: "):
		rest = strings.TrimPrefix(rest, "runtime error: ")
		// "invalid memory address or nil pointer dereference" names two causes; the second is
		// the one a Go program has.
		if _, after, ok := strings.Cut(rest, " or "); ok && strings.Contains(rest, "nil pointer") {
			rest = after
		}
		return clean(rest)
	case rest == "assignment to entry in nil map", strings.HasPrefix(rest, "interface conversion:"):
		if strings.HasPrefix(rest, "interface conversion:") {
			return "interface conversion"
		}
		return rest
	}
	return "panic"
}

func clean(s string) string {
	s = brackets.ReplaceAllString(s, "")
	s = withValue.ReplaceAllString(s, "")
	return strings.TrimSpace(s)
}
