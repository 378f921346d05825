package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relayfix/internal/exitcode"
	"relayfix/internal/stamp"
	"relayfix/manifest"
	"relayfix/packages/archive"
	"relayfix/packages/archive/archivetest"
)

// resigned replaces the manifest and signature entries with m signed by the secret key file.
func resigned(t testing.TB, es []archivetest.Entry, m *manifest.Manifest, keyFile string) []archivetest.Entry {
	t.Helper()
	key, err := readSecretKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return archivetest.Resign(t, es, m, key)
}

// TestVerifyRefusesTampered runs the real hotfix verify on packages altered after signing, or
// forged, and checks that each is refused with exit status 1 and a first stderr line that names
// the file and the check that failed.
func TestVerifyRefusesTampered(t *testing.T) {
	pkg, key := signedPackage(t)
	untrusted := filepath.Join(t.TempDir(), "untrusted")
	mustHotfix(t, "keygen", "-o", untrusted)
	parse := func(es []archivetest.Entry) *manifest.Manifest {
		m, err := manifest.Parse(es[0].Body)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name   string
		tamper func(es []archivetest.Entry) []archivetest.Entry
		want   []string
	}{
		{"flipped payload byte", func(es []archivetest.Entry) []archivetest.Entry {
			es[2].Body[len(es[2].Body)/3] ^= 0x04
			return es
		}, []string{"payload bin/msgtrack: sha256 mismatch: manifest says "}},
		{"payload one byte short", func(es []archivetest.Entry) []archivetest.Entry {
			es[2].Body = es[2].Body[:len(es[2].Body)-1]
			return es
		}, []string{"payload bin/msgtrack: size mismatch: manifest says "}},
		{"manifest edited after signing", func(es []archivetest.Entry) []archivetest.Entry {
			es[0].Body = bytes.Replace(es[0].Body, []byte(`"reboot": false`), []byte(`"reboot": true `), 1)
			return es
		}, []string{"manifest.json.minisig: signature check failed: manifest.json does not match its signature"}},
		{"wrong file version", func(es []archivetest.Entry) []archivetest.Entry {
			m := parse(es)
			m.Files[0].Version = manifest.MustParseFileVersion("6.5.7638.1")
			return resigned(t, es, m, key+".key")
		}, []string{"payload bin/msgtrack: version mismatch: manifest says 6.5.7638.1, file has " + stamp.TrackFixedVersion}},
		{"wrong platform", func(es []archivetest.Entry) []archivetest.Entry {
			m := parse(es)
			if m.Files[0].Platform == "linux/arm64" {
				m.Files[0].Platform = "linux/amd64"
			} else {
				m.Files[0].Platform = "linux/arm64"
			}
			return resigned(t, es, m, key+".key")
		}, []string{"payload bin/msgtrack: platform mismatch: manifest says linux/"}},
		{"timestamp off by one second", func(es []archivetest.Entry) []archivetest.Entry {
			es[2].Header.ModTime = es[2].Header.ModTime.Add(-time.Second)
			return es
		}, []string{"payload bin/msgtrack: date mismatch: manifest says 2006-02-14T03:36:00Z, file has 2006-02-14T03:35:59Z"}},
		{"signed by an untrusted key", func(es []archivetest.Entry) []archivetest.Entry {
			return resigned(t, es, parse(es), untrusted+".key")
		}, []string{"manifest.json.minisig: signature check failed", "which is not trusted"}},
		{"entry ../x", func(es []archivetest.Entry) []archivetest.Entry {
			return append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "../x", Mode: 0o644}, Body: []byte("x")})
		}, []string{"archive entry ../x: path escapes the package"}},
		{"absolute path", func(es []archivetest.Entry) []archivetest.Entry {
			return append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "/usr/local/bin/x", Mode: 0o755}, Body: []byte("x")})
		}, []string{"archive entry /usr/local/bin/x: absolute path"}},
		{"symlink", func(es []archivetest.Entry) []archivetest.Entry {
			es[2] = archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "payload/bin/msgtrack", Linkname: "/bin/sh"}}
			return es
		}, []string{"archive entry payload/bin/msgtrack: symlink (to /bin/sh) not allowed"}},
		{"extra unlisted file", func(es []archivetest.Entry) []archivetest.Entry {
			return append(es, archivetest.Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "payload/bin/backdoor", Mode: 0o755}, Body: []byte("x")})
		}, []string{"archive entry payload/bin/backdoor: not in the manifest's file table"}},
		{"1 GiB of zeros compressed small", func(es []archivetest.Entry) []archivetest.Entry {
			es[2].Body, es[2].Zeros = nil, 1<<30
			return es
		}, []string{"payload bin/msgtrack: size mismatch", "file has 1073741824"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := archivetest.RepackFile(t, tc.tamper(archivetest.UnpackFile(t, pkg)))
			start := time.Now()
			stdout, stderr, code := hotfix(t, "verify", bad, "--pubkey", key+".pub")
			if code != exitcode.Failed {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitcode.Failed, stdout, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			for _, w := range tc.want {
				if !strings.Contains(first, w) {
					t.Errorf("first stderr line %q\ndoes not say %q", first, w)
				}
			}
			if !strings.HasPrefix(first, "hotfix: package "+bad+": ") {
				t.Errorf("first stderr line %q does not name the package", first)
			}
			if strings.Contains(tc.name, "GiB") && time.Since(start) > 5*time.Second {
				t.Errorf("refusing the bomb took %v", time.Since(start))
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(bad), "*")); len(left) != 1 {
				t.Errorf("verify left files next to the package: %v", left)
			}
		})
	}
}

// TestVerifyJSONReportsFailedCheck checks the machine-readable report of a failed verify: the
// failing file's checks, with the failed one marked.
func TestVerifyJSONReportsFailedCheck(t *testing.T) {
	pkg, key := signedPackage(t)
	es := archivetest.UnpackFile(t, pkg)
	es[2].Body[1000] ^= 0xff
	stdout, stderr, code := hotfix(t, "verify", archivetest.RepackFile(t, es), "--pubkey", key+".pub", "--json")
	if code != exitcode.Failed {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Files []struct {
			Path   string `json:"path"`
			Checks []struct {
				Check string `json:"check"`
				OK    bool   `json:"ok"`
			} `json:"checks"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("verify --json printed %q: %v", stdout, err)
	}
	if res.OK || !strings.Contains(res.Error, "sha256 mismatch") || len(res.Files) != 1 {
		t.Fatalf("report %+v", res)
	}
	got := map[string]bool{}
	for _, c := range res.Files[0].Checks {
		got[c.Check] = c.OK
	}
	want := map[string]bool{"size": true, "sha256": false, "version": true, "platform": true, "date": true}
	for k, v := range want {
		if ok, present := got[k]; !present || ok != v {
			t.Errorf("check %s: got ok=%v (present %v), want ok=%v", k, ok, present, v)
		}
	}
}

// minisignTool returns the path of the minisign command. CI installs it (.ci/run) and sets CI, so
// there its absence fails the test; on a developer's machine without it the interop tests are
// skipped, saying how to run them.
func minisignTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("minisign")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the minisign tool is needed to test signature interoperability (apt-get install minisign): %v", err)
		}
		t.Skipf("minisign is not installed: apt-get install minisign to test signature interoperability (CI requires it)")
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMinisignVerifiesPackSignature: a package signed by hotfix pack verifies with minisign -V
// once manifest.json and its signature are taken out of it.
func TestMinisignVerifiesPackSignature(t *testing.T) {
	tool := minisignTool(t)
	pkg, key := signedPackage(t)
	es := archivetest.UnpackFile(t, pkg)
	dir := t.TempDir()
	for _, e := range es[:2] {
		if err := os.WriteFile(filepath.Join(dir, e.Header.Name), e.Body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(dir, archive.EntryManifest)
	out := runTool(t, tool, "-V", "-p", key+".pub", "-m", m)
	if !strings.Contains(out, "Signature and comment signature verified") || !strings.Contains(out, "id:KB910618") {
		t.Errorf("minisign -V said:\n%s", out)
	}
	// And minisign notices an edit.
	os.WriteFile(m, append(es[0].Body, ' '), 0o644)
	if err := exec.Command(tool, "-V", "-p", key+".pub", "-m", m).Run(); err == nil {
		t.Error("minisign -V accepted an edited manifest")
	}
}

// TestVerifyAcceptsMinisignSignature: a manifest filled by hotfix pack --manifest-only and signed
// with minisign -S packs with --signature, and hotfix verify accepts it with minisign's public
// key. It also signs with a secret key from hotfix keygen, which minisign must accept.
func TestVerifyAcceptsMinisignSignature(t *testing.T) {
	tool := minisignTool(t)
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl.json")
	if err := os.WriteFile(tmpl, []byte(testTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	filled := filepath.Join(dir, "KB910618.json")
	mustHotfix(t, "pack", "--manifest", tmpl, "--file", "bin/msgtrack="+stampedBin, "--date", "2006-02-14T03:36:00Z", "--manifest-only", "-o", filled)

	toolKey := filepath.Join(dir, "tool")
	runTool(t, tool, "-G", "-W", "-p", toolKey+".pub", "-s", toolKey+".key")
	ourKey := filepath.Join(dir, "ours")
	mustHotfix(t, "keygen", "-o", ourKey)

	for _, k := range []string{toolKey, ourKey} {
		t.Run(filepath.Base(k), func(t *testing.T) {
			sig := filepath.Join(t.TempDir(), "manifest.minisig")
			runTool(t, tool, "-S", "-s", k+".key", "-m", filled, "-x", sig, "-t", "signed with the minisign tool")
			pkg := filepath.Join(t.TempDir(), "KB910618.hfx")
			mustHotfix(t, "pack", "--manifest", filled, "--signature", sig, "--file", "bin/msgtrack="+stampedBin, "-o", pkg)
			out := mustHotfix(t, "verify", pkg, "--pubkey", k+".pub")
			if !strings.Contains(out, `trusted comment "signed with the minisign tool"`) || !strings.Contains(out, "verified: 1 files") {
				t.Errorf("verify said:\n%s", out)
			}
			// The minisign-signed manifest was packed byte for byte: an edit breaks it.
			es := archivetest.UnpackFile(t, pkg)
			es[0].Body = bytes.Replace(es[0].Body, []byte("heavy"), []byte("light"), 1)
			if _, stderr, code := hotfix(t, "verify", archivetest.RepackFile(t, es), "--pubkey", k+".pub"); code != exitcode.Failed || !strings.Contains(stderr, "signature check failed") {
				t.Errorf("edited minisign-signed manifest: exit %d, %s", code, stderr)
			}
		})
	}

	// Packing a signed manifest with a payload that does not match it is refused.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("not the binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	sig := filepath.Join(dir, "sig")
	runTool(t, tool, "-S", "-s", toolKey+".key", "-m", filled, "-x", sig)
	_, stderr, code := hotfix(t, "pack", "--manifest", filled, "--signature", sig, "--file", "bin/msgtrack="+other, "-o", filepath.Join(dir, "bad.hfx"))
	if code != exitcode.Failed || !strings.Contains(stderr, "bin/msgtrack: size mismatch") {
		t.Errorf("pack --signature with the wrong payload: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.hfx")); err == nil {
		t.Error("a refused pack left its output behind")
	}
}
