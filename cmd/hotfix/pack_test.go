package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"relayfix/internal/stamp"
)

// Binaries built once for the whole package: the real hotfix command, and a small payload
// binary stamped with the KB 910618 file version.
var (
	binDir     string
	hotfixBin  string
	stampedBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hotfix-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	hotfixBin = filepath.Join(dir, "hotfix")
	stampedBin = filepath.Join(dir, "msgtrack")
	builds := [][]string{
		{"go", "build", "-o", hotfixBin, "."},
		{"go", "build", "-ldflags", stamp.LDFlag(stamp.TrackFixedVersion), "-o", stampedBin, "../../packages/archive/testdata/stamped"},
	}
	for _, b := range builds {
		cmd := exec.Command(b[0], b[1:]...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(b, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hotfix runs the real binary and returns its stdout, stderr and exit code.
func hotfix(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(hotfixBin, args...)
	cmd.Env = append(os.Environ(), "RELAYFIX_ROOT="+filepath.Join(t.TempDir(), "noroot"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run hotfix: %v", err)
	}
	return out.String(), errb.String(), code
}

// mustHotfix runs the real binary and fails the test unless it succeeds.
func mustHotfix(t testing.TB, args ...string) string {
	t.Helper()
	out, errs, code := hotfix(t, args...)
	if code != 0 {
		t.Fatalf("hotfix %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// testTemplate is a manifest template for the stamped payload, as a package author writes it.
const testTemplate = `{
  "schema": 1,
  "id": "KB910618",
  "title": "The message tracking component crashes under heavy load",
  "kind": "hotfix",
  "released": "2006-02-14",
  "product": {"name": "relayfix"},
  "requires": {"product_version": ">= 6.5.7638", "service_pack": 2},
  "files": [
    {"name": "msgtrack", "path": "bin/msgtrack", "component": "tracking"}
  ],
  "restart": {"services": ["tracking"], "reboot": false},
  "supersedes": ["KB900001"]
}
`

// signedPackage makes a key pair and a package signed with it, through the real binary, and
// returns the package path and the key pair's NAME (NAME.pub, NAME.key).
func signedPackage(t testing.TB) (pkg, key string) {
	t.Helper()
	dir := t.TempDir()
	key = filepath.Join(dir, "relayfix")
	mustHotfix(t, "keygen", "-o", key)
	tmpl := filepath.Join(dir, "kb910618.json")
	if err := os.WriteFile(tmpl, []byte(testTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg = filepath.Join(dir, "KB910618.hfx")
	mustHotfix(t, "pack", "--manifest", tmpl, "--key", key+".key", "--file", "bin/msgtrack="+stampedBin,
		"--date", "2006-02-14T03:36:00Z", "-o", pkg)
	return pkg, key
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("STAMPED", stampedBin)
			env.Setenv("RELAYFIX_ROOT", filepath.Join(env.WorkDir, "root"))
			return nil
		},
	})
}
