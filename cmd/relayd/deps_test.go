package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package manager out of the relay: relayd needs only the checksum
// the installed-files database records for its plugin, not the code that signs, unpacks and swaps
// packages. A relay that linked them would carry their size and their bugs, and an import of
// the store from the relay side would soon follow.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []struct{ prefix, what string }{
		{"aead.dev/minisign", "package signatures"},
		{"github.com/klauspost/compress", "the package archive's zstd"},
		{"github.com/minio/selfupdate", "the store's binary swap"},
		{"github.com/Masterminds/semver", "prerequisite constraints"},
		{"relayfix/packages/store", "the install store"},
		{"relayfix/packages/archive", "the package archive"},
		{"relayfix/verifier", "the package verifier"},
	}
	for _, f := range forbidden {
		for _, d := range deps {
			if d == f.prefix || strings.HasPrefix(d, f.prefix+"/") {
				t.Errorf("relayd links %s (%s)", d, f.what)
			}
		}
	}
}
