package trackhost

import (
	"os/exec"
	"strings"
	"testing"
)

// The tracking host learns the installed checksum through Config.ExpectedSum: it links none of
// the package manager (archive format, signatures, file swapping, version constraints).
func TestLinksNoPackageManager(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "relayfix/relay/trackhost").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"relayfix/packages", "relayfix/verifier", "relayfix/manifest", "aead.dev/minisign",
			"github.com/klauspost/compress", "github.com/minio/selfupdate", "github.com/Masterminds/semver"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("relay/trackhost links %s", dep)
			}
		}
	}
}
