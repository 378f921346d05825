package relaytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// HTTPAddr returns the address of the metrics and status page listener relayd logged (it logs
// it before it reports listening for SMTP), or fails the test.
func (r *Relayd) HTTPAddr() string {
	r.t.Helper()
	for _, line := range strings.Split(r.Log(), "\n") {
		if !strings.Contains(line, "metrics and status page listening") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "http="); ok {
				return a
			}
		}
	}
	r.t.Fatalf("relayd did not log a metrics listener (started without --metrics-listen?)")
	return ""
}

// Get fetches url and returns its status code and body.
func Get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("get %s: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

// Tool returns the path of an outside program a test needs (promtool, chromium). CI installs
// them and sets CI, so there a missing tool fails the test; elsewhere the test is skipped, saying
// which Debian package provides it.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed by this test (apt-get install %s): %v", name, debianPackage, err)
		}
		t.Skipf("%s is not installed: apt-get install %s to run this test (CI requires it)", name, debianPackage)
	}
	return p
}

// WaitFor polls cond every 50ms until it holds, failing the test if it does not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ProcCPU returns the CPU time (user and system) process pid has used so far, with that of its
// reaped children when children is set, from /proc/PID/stat in clock ticks of 10 ms.
func ProcCPU(pid int, children bool) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd (state) on
	idx := []int{11, 12}                                     // utime, stime
	if children {
		idx = append(idx, 13, 14) // cutime, cstime
	}
	var ticks int64
	for _, i := range idx {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
