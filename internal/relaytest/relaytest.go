// Package relaytest is the shared harness for tests that run the real relayfix binaries: it
// builds them stamped as the Makefile does, makes install roots short enough for a Unix socket
// path, and starts relayd as a process on a free loopback port, keeping its log for a failing
// test. Suites call Build from TestMain and StartRelayd from their tests, so every suite drives
// the same binaries the same way.
package relaytest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/relay/control"
)

// Program names one of the binaries Build can make.
type Program string

// The programs, each built as `make build` builds it.
const (
	HotfixProgram      Program = "hotfix"          // cmd/hotfix, unstamped
	RelaydProgram      Program = "relayd"          // cmd/relayd, stamp.RelaydVersion
	TrackPrefixProgram Program = "msgtrack-prefix" // cmd/msgtrack -tags msgtrack_prefix, stamp.TrackPrefixVersion
	TrackFixedProgram  Program = "msgtrack-fixed"  // cmd/msgtrack, stamp.TrackFixedVersion
	// TrackBrokenProgram is a stand-in tracking build, stamped TrackBrokenVersion, that exits at
	// start: the kind of broken build a health check must catch.
	TrackBrokenProgram Program = "msgtrack-broken"
	// RelaydSP3Program and TrackSP3Program are service pack 3's builds, stamped
	// stamp.RelaydSP3Version and stamp.TrackSP3Version.
	RelaydSP3Program Program = "relayd-sp3"
	TrackSP3Program  Program = "msgtrack-sp3"
	// RelaydBrokenProgram is a stand-in relayd, stamped RelaydBrokenVersion, that exits at start;
	// RelaydHangProgram, stamped the same, starts and never says it is ready.
	RelaydBrokenProgram Program = "relayd-broken"
	RelaydHangProgram   Program = "relayd-hang"
)

// RelaydBrokenVersion is the file version of RelaydBrokenProgram and RelaydHangProgram.
const RelaydBrokenVersion = "6.5.7700.9"

// TrackBrokenVersion is the file version TrackBrokenProgram is stamped with: newer than the fixed
// build, so that hotfix takes it for an upgrade.
const TrackBrokenVersion = "6.5.7651.46"

// Binaries holds the paths Build wrote; a program that was not asked for has an empty path.
type Binaries struct {
	Hotfix       string // DIR/hotfix
	Relayd       string // DIR/relayd
	TrackPrefix  string // DIR/sp2/msgtrack: the service pack build with the KB 910618 defect
	TrackFixed   string // DIR/kb910618/msgtrack: the fixed build
	TrackBroken  string // DIR/broken/msgtrack: a build that exits at start
	RelaydSP3    string // DIR/sp3/relayd
	TrackSP3     string // DIR/sp3/msgtrack
	RelaydBroken string // DIR/broken/relayd: exits at start
	RelaydHang   string // DIR/hang/relayd: never ready
}

// Build builds progs (all of them when none is named) into dir, laid out as `make build` lays out
// bin/. The binaries are static (CGO_ENABLED=0), so a copy behaves the same from any root.
func Build(ctx context.Context, dir string, progs ...Program) (Binaries, error) {
	if len(progs) == 0 {
		progs = []Program{HotfixProgram, RelaydProgram, TrackPrefixProgram, TrackFixedProgram, TrackBrokenProgram}
	}
	var b Binaries
	for _, p := range progs {
		var out, pkg string
		var args []string
		switch p {
		case TrackBrokenProgram:
			b.TrackBroken = filepath.Join(dir, "broken", "msgtrack")
			if err := buildExitAtStart(ctx, dir, b.TrackBroken, TrackBrokenVersion, false); err != nil {
				return Binaries{}, err
			}
			continue
		case RelaydBrokenProgram:
			b.RelaydBroken = filepath.Join(dir, "broken", "relayd")
			if err := buildExitAtStart(ctx, dir, b.RelaydBroken, RelaydBrokenVersion, false); err != nil {
				return Binaries{}, err
			}
			continue
		case RelaydHangProgram:
			b.RelaydHang = filepath.Join(dir, "hang", "relayd")
			if err := buildExitAtStart(ctx, dir, b.RelaydHang, RelaydBrokenVersion, true); err != nil {
				return Binaries{}, err
			}
			continue
		case RelaydSP3Program:
			b.RelaydSP3 = filepath.Join(dir, "sp3", "relayd")
			out, pkg = b.RelaydSP3, "relayfix/cmd/relayd"
			args = []string{"-ldflags", stamp.LDFlag(stamp.RelaydSP3Version)}
		case TrackSP3Program:
			b.TrackSP3 = filepath.Join(dir, "sp3", "msgtrack")
			out, pkg = b.TrackSP3, "relayfix/cmd/msgtrack"
			args = []string{"-ldflags", stamp.LDFlag(stamp.TrackSP3Version)}
		case HotfixProgram:
			b.Hotfix = filepath.Join(dir, "hotfix")
			out, pkg = b.Hotfix, "relayfix/cmd/hotfix"
		case RelaydProgram:
			b.Relayd = filepath.Join(dir, "relayd")
			out, pkg = b.Relayd, "relayfix/cmd/relayd"
			args = []string{"-ldflags", stamp.LDFlag(stamp.RelaydVersion)}
		case TrackPrefixProgram:
			b.TrackPrefix = filepath.Join(dir, "sp2", "msgtrack")
			out, pkg = b.TrackPrefix, "relayfix/cmd/msgtrack"
			args = []string{"-tags", "msgtrack_prefix", "-ldflags", stamp.LDFlag(stamp.TrackPrefixVersion)}
		case TrackFixedProgram:
			b.TrackFixed = filepath.Join(dir, "kb910618", "msgtrack")
			out, pkg = b.TrackFixed, "relayfix/cmd/msgtrack"
			args = []string{"-ldflags", stamp.LDFlag(stamp.TrackFixedVersion)}
		default:
			return Binaries{}, fmt.Errorf("build %q: no such program", p)
		}
		cmd := exec.CommandContext(ctx, "go", append(append([]string{"build", "-o", out}, args...), pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %w\n%s", p, err, msg)
		}
	}
	return b, nil
}

// buildExitAtStart builds, from a module of its own, a program stamped version that says it
// cannot start and exits with status 3; with hang, one that says nothing and waits until it is
// killed.
func buildExitAtStart(ctx context.Context, dir, out, version string, hang bool) error {
	src := filepath.Join(dir, "brokensrc")
	if hang {
		src = filepath.Join(dir, "hangsrc")
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("build the exit-at-start plugin: %w", err)
	}
	files := map[string]string{
		"go.mod": "module broken\n\ngo 1.22\n",
		"main.go": `package main

import (
	"fmt"
	"os"
	"time"
)

var what, hang string

func main() {
	for hang != "" {
		time.Sleep(time.Hour)
	}
	fmt.Fprintln(os.Stderr, "build", what, "cannot start")
	os.Exit(3)
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("build the exit-at-start plugin: %w", err)
		}
	}
	ldflags := "-X main.what=" + stamp.Marker + version + stamp.Terminator
	if hang {
		ldflags += " -X main.hang=1"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "-ldflags", ldflags, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the exit-at-start plugin: %w\n%s", err, msg)
	}
	return nil
}

// Main is a TestMain for a suite that needs nothing but the binaries: it builds progs (all
// when none is named) into a temporary directory, stores their paths in *bins, runs the tests,
// removes the directory and exits with the tests' code.
func Main(m *testing.M, bins *Binaries, progs ...Program) {
	dir, err := os.MkdirTemp("", "relaytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if *bins, err = Build(context.Background(), dir, progs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// ShortRoot returns a fresh install root under the system temporary directory, removed when the
// test ends. t.TempDir's paths are long enough to push the control socket past the 108 bytes a
// Unix socket address holds.
func ShortRoot(t testing.TB) layout.Root {
	t.Helper()
	dir, err := os.MkdirTemp("", "rf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return layout.Root(dir)
}

// startTimeout bounds how long relayd may take to start serving SMTP.
const startTimeout = 20 * time.Second

// logTail is how much of relayd's log a failing test shows: the end, where the failure is.
const logTail = 20000

// Relayd is a running relayd process.
type Relayd struct {
	Addr string         // the SMTP listen address relayd logged
	Ctl  control.Client // its control socket

	t    testing.TB
	cmd  *exec.Cmd
	log  LogBuffer
	done chan struct{}
	err  error // from Wait, set before done is closed
}

// StartRelayd runs bin as relayd on root, listening on a free loopback port, with nextHop as its
// next hop (none when empty) and extra arguments after, and waits until it serves SMTP. When the
// test ends relayd gets SIGTERM (SIGKILL if it has not exited within 20s), and a failed test
// logs the end of relayd's log.
func StartRelayd(t testing.TB, bin string, root layout.Root, nextHop string, extra ...string) *Relayd {
	t.Helper()
	args := []string{"--root", string(root), "--listen", "127.0.0.1:0"}
	if nextHop != "" {
		args = append(args, "--next-hop", nextHop)
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	r := &Relayd{Ctl: control.Client{Path: root.ControlSocket()}, t: t, cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.log.Write([]byte(line + "\n"))
			if !strings.Contains(line, "relayd listening") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "smtp="); ok {
					select {
					case addrc <- a:
					default:
					}
				}
			}
		}
	}()
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			s := r.Log()
			if len(s) > logTail {
				s = "...\n" + s[len(s)-logTail:]
			}
			t.Logf("relayd log:\n%s", s)
		}
	})
	select {
	case r.Addr = <-addrc:
	case <-r.done:
		t.Fatalf("relayd exited at start: %v\n%s", r.err, r.Log())
	case <-time.After(startTimeout):
		t.Fatalf("relayd did not listen within %v\n%s", startTimeout, r.Log())
	}
	return r
}

// Log returns what relayd has written to stderr so far.
func (r *Relayd) Log() string { return r.log.String() }

// Pid is relayd's process id.
func (r *Relayd) Pid() int { return r.cmd.Process.Pid }

// Signal sends sig to relayd.
func (r *Relayd) Signal(sig os.Signal) { r.cmd.Process.Signal(sig) }

// Done is closed once relayd has exited.
func (r *Relayd) Done() <-chan struct{} { return r.done }

// ExitCode is relayd's exit code once Done is closed (-1 if a signal ended it).
func (r *Relayd) ExitCode() int {
	<-r.done
	return r.cmd.ProcessState.ExitCode()
}

// Kill9 kills relayd without warning and waits until it is gone.
func (r *Relayd) Kill9() {
	r.Signal(syscall.SIGKILL)
	<-r.done
}

// Stop sends SIGTERM and returns the exit code; the test fails at once if relayd has not exited
// within timeout.
func (r *Relayd) Stop(timeout time.Duration) int {
	r.t.Helper()
	r.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.t.Fatalf("relayd did not exit within %v of SIGTERM", timeout)
	}
	return r.ExitCode()
}

// LogBuffer collects a log that one goroutine writes and another reads: relayd's stderr, or
// an in-process logger's output under test. The zero value is empty and ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p; it never fails.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
