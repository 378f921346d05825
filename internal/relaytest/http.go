package relaytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
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
