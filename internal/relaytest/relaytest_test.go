package relaytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"relayfix/internal/stamp"
)

// bins holds relayd alone, built once: the harness is tested against the real relayd it
// exists to run.
var bins Binaries

func TestMain(m *testing.M) { Main(m, &bins, RelaydProgram) }

func TestBuildBuildsWhatIsAsked(t *testing.T) {
	if bins.Relayd == "" || bins.Hotfix != "" || bins.TrackPrefix != "" || bins.TrackFixed != "" {
		t.Fatalf("asked for relayd alone, built %+v", bins)
	}
	if fi, err := os.Stat(bins.Relayd); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("relayd binary: %v %v", fi, err)
	}
}

func TestBuildRefusesAnUnknownProgram(t *testing.T) {
	if _, err := Build(context.Background(), t.TempDir(), "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("Build of an unknown program: %v", err)
	}
}

func TestShortRootFitsASocketAddress(t *testing.T) {
	// sun_path holds 108 bytes, the terminating NUL included.
	if p := ShortRoot(t).ControlSocket(); len(p) >= 108 {
		t.Fatalf("control socket path is %d bytes: %s", len(p), p)
	}
}

func TestStartRelaydThenStop(t *testing.T) {
	r := StartRelayd(t, bins.Relayd, ShortRoot(t), "")
	c, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the logged address %s: %v", r.Addr, err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := r.Ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != stamp.RelaydVersion || st.PID != r.Pid() {
		t.Fatalf("status: version %q pid %d, want %q pid %d", st.Version, st.PID, stamp.RelaydVersion, r.Pid())
	}
	if !strings.Contains(r.Log(), "relayd listening") {
		t.Fatalf("log lacks the listening line:\n%s", r.Log())
	}
	if code := r.Stop(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

func TestKill9(t *testing.T) {
	r := StartRelayd(t, bins.Relayd, ShortRoot(t), "")
	r.Kill9()
	select {
	case <-r.Done():
	default:
		t.Fatal("Done is open after Kill9 returned")
	}
	if code := r.ExitCode(); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1 (killed by a signal)", code)
	}
}

func TestStartRelaydThatCannotStartFails(t *testing.T) {
	// A relayd that exits at once must fail the test with its error, not wait out the start
	// timeout.
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil && p != ft {
				panic(p)
			}
		}()
		StartRelayd(ft, bins.Relayd, ShortRoot(t), "nocolon")
	}()
	<-done
	if !ft.failed || !strings.Contains(ft.msg, "relayd exited at start") {
		t.Fatalf("start of a relayd with a bad next hop: failed %v, %q", ft.failed, ft.msg)
	}
}

func TestLogBufferKeepsConcurrentWrites(t *testing.T) {
	// Each write lands whole, whichever goroutine makes it and while others read.
	var l LogBuffer
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&l, "g%d line %03d\n", g, i)
				_ = l.String()
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, line := range lines {
		if len(line) != len("g0 line 000") || !strings.HasPrefix(line, "g") {
			t.Fatalf("torn line %q", line)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and unwinds with a panic, so a
// test can check that a harness function fails the way it should.
type fatalRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(f)
}
