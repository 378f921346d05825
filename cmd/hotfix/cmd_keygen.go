package main

import (
	"fmt"
	"os"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"relayfix/internal/exitcode"
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
		Example: `  hotfix keygen -o dist/demo
  install -D -m 0644 dist/demo.pub /var/lib/relayfix/hotfix/trusted/demo.pub`,
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
	keyID, err := verifier.CreateKeyPair(pubPath, keyPath, o.force)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	id := verifier.KeyID(keyID)
	if g.json {
		return writeJSON(g.stdout, map[string]string{"key_id": id, "public_key": pubPath, "secret_key": keyPath})
	}
	fmt.Fprintf(g.stdout, "Key %s\n  public key: %s\n  secret key: %s (unencrypted: keep it private)\n", id, pubPath, keyPath)
	return nil
}

// readSecretKey reads a minisign secret key file, decrypting it with $RELAYFIX_KEY_PASSWORD when
// it is encrypted.
func readSecretKey(path string) (minisign.PrivateKey, error) {
	return verifier.ReadSecretKey(path, func() (string, error) {
		pw, ok := os.LookupEnv(envKeyPassword)
		if !ok {
			return "", fmt.Errorf("set %s to its password", envKeyPassword)
		}
		return pw, nil
	})
}
