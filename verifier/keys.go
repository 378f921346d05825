package verifier

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
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
	if strings.Contains(string(b), "secret key") {
		return minisign.PublicKey{}, fmt.Errorf("public key %s: --pubkey names a secret key; give the .pub file", path)
	}
	var k minisign.PublicKey
	if err := k.UnmarshalText([]byte(strings.TrimSpace(string(b)))); err != nil {
		return minisign.PublicKey{}, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// KeyID formats a minisign key id the way minisign prints it.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// CreateKeyPair creates a minisign key pair and writes the secret key, unencrypted and owner-only,
// to keyPath and the public key to pubPath, both in minisign's own format, and returns the key
// id. Unless overwrite is set, an existing file at either path is an error and nothing is
// written.
func CreateKeyPair(pubPath, keyPath string, overwrite bool) (uint64, error) {
	if !overwrite {
		for _, p := range []string{pubPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return 0, fmt.Errorf("%s exists (use --force to replace the key pair)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return 0, err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o755); err != nil {
		return 0, err
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	keyText, err := EncodeSecretKey(priv)
	if err != nil {
		return 0, err
	}
	pubText, err := pub.MarshalText()
	if err != nil {
		return 0, err
	}
	// The secret key first: a public key without its secret key would be useless.
	if err := safefile.WriteFile(keyPath, keyText, 0o600); err != nil {
		return 0, err
	}
	if err := safefile.WriteFile(pubPath, append(pubText, '\n'), 0o644); err != nil {
		return 0, err
	}
	return pub.ID(), nil
}

// EncodeSecretKey encodes an unencrypted secret key as minisign writes one. The library leaves
// the key's checksum zero, which the minisign tool refuses; the checksum is BLAKE2b-256 over the
// signature algorithm, the key id and the key (minisign's keynum_sk), so it is filled in here.
func EncodeSecretKey(priv minisign.PrivateKey) ([]byte, error) {
	text, err := priv.MarshalText()
	if err != nil {
		return nil, err
	}
	const comment = "untrusted comment: minisign encrypted secret key\n"
	raw, err := base64.StdEncoding.DecodeString(string(text[len(comment):]))
	if err != nil || len(raw) != 158 {
		return nil, fmt.Errorf("encode secret key: unexpected layout")
	}
	// Layout: sig alg (2), kdf alg (2), checksum alg (2), salt (32), ops (8), mem (8),
	// then keynum_sk: key id (8), secret key (64), checksum (32).
	h, _ := blake2b.New256(nil)
	h.Write(raw[0:2])
	h.Write(raw[54:126])
	copy(raw[126:158], h.Sum(nil))
	if binary.LittleEndian.Uint16(raw[2:]) != 0 {
		return nil, fmt.Errorf("encode secret key: unexpected KDF")
	}
	out := append([]byte(comment), base64.StdEncoding.EncodeToString(raw)...)
	return append(out, '\n'), nil
}

// ReadSecretKey reads a minisign secret key file. An encrypted key is decrypted with the password
// that password returns; it is called only for an encrypted key, and its error says how to give
// one.
func ReadSecretKey(path string, password func() (string, error)) (minisign.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("read secret key: %w", err)
	}
	if minisign.IsEncrypted(b) {
		pw, err := password()
		if err != nil {
			return minisign.PrivateKey{}, fmt.Errorf("secret key %s is encrypted: %w", path, err)
		}
		k, err := minisign.DecryptKey(pw, b)
		if err != nil {
			return minisign.PrivateKey{}, fmt.Errorf("secret key %s: %w", path, err)
		}
		return k, nil
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(b); err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("secret key %s: %w", path, err)
	}
	return k, nil
}
