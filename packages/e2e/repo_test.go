package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"relayfix/internal/layout"
	"relayfix/relay/control"
)

// installed lists the files of root that a hotfix command could change, with their contents:
// the binaries, the product record and hotfix's own records, leaving out the sources' TUF
// metadata (which refreshing may update) and what the running relay writes.
func installed(t *testing.T, root layout.Root) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, top := range []string{"bin", "hotfix", "product.json"} {
		filepath.Walk(root.Join(top), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(string(root), p)
			if strings.HasPrefix(filepath.ToSlash(rel), "hotfix/sources/") && strings.Contains(filepath.ToSlash(rel), "/metadata/") {
				return nil
			}
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
			return nil
		})
	}
	return out
}

// The whole path an operator takes: the SP2 tracking build crashes under load and relayd
// records the crash's signature; hotfix check, against a repository served on loopback, names
// KB910618 as the fix without changing the install; hotfix apply KB910618 fetches it by id and
// applies it live, health-gated, and no acknowledged message is lost.
func TestCheckNamesFixThenApplyByIDUnderLoad(t *testing.T) {
	root, sink, r := liveSP2(t)
	r.waitTracking(t, "6.5.7638.1")

	serveRepo(t, root, e.sp2, e.kb)

	l := startLoad(r.Addr, 150, 20000)
	st, ok := r.pollTracking(func(c control.ComponentStatus) bool { return len(c.CrashSignatures) > 0 })
	if !ok {
		t.Fatalf("no crash signature recorded under load; last status %+v", st)
	}

	before := installed(t, root)
	out := mustHotfix(t, root, "check")
	line := regexp.MustCompile(`(?m)^msgtrack 6\.5\.7638\.1 crashed \d+ times? since \d\d:\d\d UTC \(nil pointer dereference in relayfix/relay/trackplugin\.recordsFor\): KB910618 fixes this — hotfix apply KB910618$`)
	if !line.MatchString(out) {
		t.Errorf("check does not name the fix:\n%s", out)
	}
	t.Logf("check: %s", line.FindString(out))
	if !regexp.MustCompile(`(?m)^KB910618\thotfix\tapplicable\t`).MatchString(out) {
		t.Errorf("check does not list KB910618 as applicable:\n%s", out)
	}
	if after := installed(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("check changed the install: %d files before, %d after", len(before), len(after))
	}

	out = mustHotfix(t, root, "apply", "KB910618")
	for _, want := range []string{"Fetched KB910618 from the repository", "Applied KB910618", "service tracking: restarted, running 6.5.7651.45, healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply by id does not say %q:\n%s", want, out)
		}
	}
	r.waitTracking(t, "6.5.7651.45")
	checkConsistent(t, root)
	noneLost(t, sink, l.stop(t))

	out = mustHotfix(t, root, "check")
	if !regexp.MustCompile(`(?m)^KB910618\thotfix\tinstalled\t`).MatchString(out) || strings.Contains(out, "fixes this") {
		t.Errorf("check after the fix:\n%s", out)
	}
}

// serveRepo publishes packages in a repository served on loopback and adds it as root's source.
func serveRepo(t *testing.T, root layout.Root, pkgs ...string) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	mustHotfix(t, root, "repo", "init", repo)
	mustHotfix(t, root, append(append([]string{"repo", "add", repo}, pkgs...), "--pubkey", e.pub)...)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(repo, "repository"))))
	t.Cleanup(srv.Close)
	mustHotfix(t, root, "source", "add", srv.URL, "--trust", filepath.Join(repo, "repository", "1.root.json"))
}

// A build fetched by id that fails its health check is rolled back live, as one from a file is.
func TestApplyByIDIsHealthGated(t *testing.T) {
	root, sink, r := liveSP2(t)
	mustHotfix(t, root, "apply", e.kb)
	r.waitTracking(t, "6.5.7651.45")
	serveRepo(t, root, e.kbBad)

	l := startLoad(r.Addr, 100, 20000)
	res := hotfix(t, root, nil, "apply", "KB999001", "--health-timeout", "5s")
	if res.code != 1 || !strings.Contains(res.stdout, "Fetched KB999001 from the repository") ||
		!strings.Contains(res.stderr, "did not become healthy on 6.5.7651.46") || !strings.Contains(res.stderr, "the previous build was put back") {
		t.Errorf("apply by id of a build that exits at start: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if v := versionOf(t, root, "msgtrack"); v != "6.5.7651.45" {
		t.Errorf("after the automatic rollback msgtrack is %s", v)
	}
	r.waitTracking(t, "6.5.7651.45")
	checkConsistent(t, root)
	noneLost(t, sink, l.stop(t))
}
