package verifier

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"aead.dev/minisign"

	"relayfix/internal/layout"
)

// LoadTrustedKeys returns the minisign public keys a package signature must verify with. A
// non-empty pubkeyFlag (a comma-separated list of .pub files, from --pubkey) overrides the root's
// trusted keys, every ROOT/hotfix/trusted/*.pub file. Finding no key at all is an error: a check
// with nothing to check against would pass anything.
func LoadTrustedKeys(root layout.Root, pubkeyFlag string) ([]minisign.PublicKey, error) {
	paths := KeyFiles(pubkeyFlag)
	if pubkeyFlag == "" {
		matches, err := filepath.Glob(filepath.Join(root.Trusted(), "*.pub"))
		if err != nil {
			return nil, fmt.Errorf("trusted keys: %w", err)
		}
		paths = matches
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no trusted keys: give --pubkey or put minisign public keys in %s/*.pub: %w", root.Trusted(), fs.ErrNotExist)
	}
	slices.Sort(paths)
	keys := make([]minisign.PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := ReadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// KeyFiles returns the key files a --pubkey value names: a comma-separated list, blanks ignored.
func KeyFiles(pubkeyFlag string) []string {
	var paths []string
	for _, p := range strings.Split(pubkeyFlag, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// ReadPublicKey reads a minisign public key file (the two-line .pub file minisign -G writes) or
// a bare base64 key.
func ReadPublicKey(path string) (minisign.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("read public key: %w", err)
	}
	var k minisign.PublicKey
	if err := k.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
		return minisign.PublicKey{}, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// KeyID formats a minisign key id the way minisign prints it.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }
