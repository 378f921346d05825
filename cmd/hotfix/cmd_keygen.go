package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"aead.dev/minisign"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/blake2b"

	"relayfix/internal/exitcode"
	"relayfix/internal/safefile"
	"relayfix/verifier"
)

type keygenOptions struct {
	out   string
	force bool
}

func newCmdKeygen(g *globalOptions) *cobra.Command {
	o := &keygenOptions{}
	cmd := &cobra.Command{
		Use:   "keygen -o NAME",
		Short: "Create a minisign key pair for signing packages",
		Long: `keygen creates a minisign key pair: NAME.pub, the public key that verifies packages,
and NAME.key, the secret key that 'hotfix pack' signs with. Both are in minisign's own
format: 'minisign -S -s NAME.key' signs with the secret key and 'minisign -V -p NAME.pub'
verifies with the public one.

The secret key is written unencrypted (mode 0600), so that packing can run unattended. To keep
a secret key under a password, create it with 'minisign -G' instead; hotfix pack reads the
password of an encrypted key from $` + envKeyPassword + `.

A root trusts the public keys in ROOT/hotfix/trusted/*.pub.`,
		Example: `  hotfix keygen -o dist/relayfix
  install -D -m 0644 dist/relayfix.pub /var/lib/relayfix/hotfix/trusted/relayfix.pub`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.out == "" {
				return exitcode.Usagef("keygen: -o NAME is required")
			}
			return runKeygen(g, o)
		},
	}
	cmd.Flags().StringVarP(&o.out, "out", "o", "", "write NAME.pub and NAME.key")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite an existing key pair")
	return cmd
}

// envKeyPassword names the environment variable that holds the password of an encrypted secret
// key.
const envKeyPassword = "RELAYFIX_KEY_PASSWORD"

func runKeygen(g *globalOptions, o *keygenOptions) error {
	pubPath, keyPath := o.out+".pub", o.out+".key"
	if !o.force {
		for _, p := range []string{pubPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("keygen: %s exists (use --force to replace the key pair)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("keygen: %w", err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o755); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	keyText, err := secretKeyText(priv)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pubText, _ := pub.MarshalText()
	// The secret key first: a public key without its secret key would be useless.
	if err := safefile.WriteFile(keyPath, keyText, 0o600); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := safefile.WriteFile(pubPath, append(pubText, '\n'), 0o644); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	id := verifier.KeyID(pub.ID())
	if g.json {
		return writeJSON(g.stdout, map[string]string{"key_id": id, "public_key": pubPath, "secret_key": keyPath})
	}
	fmt.Fprintf(g.stdout, "Key %s\n  public key: %s\n  secret key: %s (unencrypted: keep it private)\n", id, pubPath, keyPath)
	return nil
}

// secretKeyText encodes an unencrypted secret key as minisign writes one. The library leaves the
// key's checksum zero, which the minisign tool refuses; the checksum is BLAKE2b-256 over the
// signature algorithm, the key id and the key (minisign's keynum_sk), so it is filled in here.
func secretKeyText(priv minisign.PrivateKey) ([]byte, error) {
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

// readSecretKey reads a minisign secret key file, decrypting it with $RELAYFIX_KEY_PASSWORD when
// it is encrypted.
func readSecretKey(path string) (minisign.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("read secret key: %w", err)
	}
	if minisign.IsEncrypted(b) {
		pw, ok := os.LookupEnv(envKeyPassword)
		if !ok {
			return minisign.PrivateKey{}, fmt.Errorf("secret key %s is encrypted: set %s to its password", path, envKeyPassword)
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
