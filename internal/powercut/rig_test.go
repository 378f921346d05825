package powercut

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/lazyfs"
	"relayfix/relay/tracklog"
	"relayfix/relay/trackrpc"
)

// rig is an install root whose disk can lose power: the backing directory is the disk, and the
// root path is where processes see it, either through a lazyfs mount (power on) or, after a
// cut, bound straight to the backing directory (the machine booted again on what the disk kept).
// The root path stays the same across both, as it would on a real machine.
type rig struct {
	back string
	root layout.Root
	m    *lazyfs.Mounted
	bind bool
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir, err := os.MkdirTemp("", "pc") // short: the control socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{back: filepath.Join(dir, "disk"), root: layout.Root(filepath.Join(dir, "root"))}
	for _, d := range []string{r.back, string(r.root)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		r.unmount()
		os.RemoveAll(dir)
	})
	return r
}

// powerOn mounts a fresh lazyfs over the disk at the root.
func (r *rig) powerOn(t *testing.T) {
	t.Helper()
	r.unmount()
	m, err := lazyfs.Mount(r.back, string(r.root))
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
}

// cut drops everything not synced, then kills the processes that were running (so that none
// of them can write anything more, even to the disk: the cut came first) and unmounts.
func (r *rig) cut(t *testing.T, kill ...func()) {
	t.Helper()
	r.m.FS.Cut()
	for _, k := range kill {
		k()
	}
	if err := r.m.Unmount(); err != nil {
		t.Fatal(err)
	}
	r.m = nil
}

// boot binds the disk at the root: what runs next sees exactly what survived the cut.
func (r *rig) boot(t *testing.T) {
	t.Helper()
	r.unmount()
	if err := syscall.Mount(r.back, string(r.root), "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", r.back, r.root, err)
	}
	r.bind = true
}

func (r *rig) unmount() {
	if r.m != nil {
		r.m.FS.Cut()
		r.m.Unmount()
		r.m = nil
	}
	if r.bind {
		syscall.Unmount(string(r.root), syscall.MNT_DETACH)
		r.bind = false
	}
}

// cutPoint is one random cut: its number, and how long after the workload started it came.
type cutPoint struct {
	n     int
	after time.Duration
}

func (c cutPoint) String() string { return fmt.Sprintf("cut %d at %v", c.n, c.after) }

// cutPoints returns n random cut moments in [lo, hi) from a seeded generator, logging the seed so
// a failing run can be repeated with -seed.
func cutPoints(t *testing.T, n int, lo, hi time.Duration) []cutPoint {
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("cut moments: seed %d (repeat with -seed %d)", s, s)
	rng := rand.New(rand.NewPCG(s, uint64(n)))
	out := make([]cutPoint, n)
	for i := range out {
		out[i] = cutPoint{n: i + 1, after: lo + time.Duration(rng.Int64N(int64(hi-lo)))}
	}
	return out
}

// checkReadable runs every file the disk holds through its reader: JSON documents, JSON-lines
// history, tracking logs (every record line must parse), the tracking journal's event lines.
// The spool's segments are read by relayd itself, which must start on them. A file a reader
// rejects is reported with the reason.
func checkReadable(t *testing.T, disk string, c cutPoint) {
	t.Helper()
	filepath.WalkDir(disk, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("%v: walk %s: %v", c, p, err)
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(disk, p)
		if err := readable(p, rel); err != nil {
			t.Errorf("%v: %s cannot be read back: %v", c, rel, err)
		}
		return nil
	})
}

func readable(path, rel string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(rel, ".json"):
		if !json.Valid(b) {
			return fmt.Errorf("not JSON: %.80q", b)
		}
	case strings.HasSuffix(rel, ".jsonl"):
		return eachLine(b, func(l []byte) error {
			if !json.Valid(l) {
				return fmt.Errorf("not JSON: %.80q", l)
			}
			return nil
		})
	case strings.HasPrefix(rel, "log/tracking/") && strings.HasSuffix(rel, ".log"):
		return eachLine(b, func(l []byte) error {
			if len(l) == 0 || l[0] == '#' {
				return nil
			}
			_, err := tracklog.ParseLine(string(l))
			return err
		})
	case strings.HasSuffix(rel, ".jnl"):
		_, err := trackrpc.ParseLines(b)
		return err
	}
	return nil
}

// eachLine calls fn for each line of b. Every writer here appends whole lines and syncs them,
// so a line without its newline at the end is a torn write, and an error.
func eachLine(b []byte, fn func([]byte) error) error {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return fmt.Errorf("torn last line %.80q", b[bytes.LastIndexByte(b, '\n')+1:])
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// poll calls done every 50 ms until it reports true or timeout has passed, and returns its last
// answer.
func poll(timeout time.Duration, done func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if done() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
