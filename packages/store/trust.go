package store

import (
	"fmt"
	"os"
	"path/filepath"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
)

// TrustKeys copies public key files into ROOT/hotfix/trusted when the root trusts no key yet, so
// that the key a service pack was installed with verifies the hotfixes that follow without
// --pubkey. A root that already trusts keys keeps exactly those. It reports whether it copied.
func TrustKeys(root layout.Root, paths []string) (bool, error) {
	have, err := filepath.Glob(filepath.Join(root.Trusted(), "*.pub"))
	if err != nil {
		return false, fmt.Errorf("trusted keys: %w", err)
	}
	if len(have) > 0 || len(paths) == 0 {
		return false, nil
	}
	if err := safefile.MkdirAll(root.Trusted(), 0o755); err != nil {
		return false, fmt.Errorf("trusted keys: %w", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return false, fmt.Errorf("trust key: %w", err)
		}
		if err := safefile.WriteFile(filepath.Join(root.Trusted(), filepath.Base(p)), b, 0o644); err != nil {
			return false, fmt.Errorf("trust key: %w", err)
		}
	}
	return true, nil
}
