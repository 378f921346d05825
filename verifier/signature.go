package verifier

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"aead.dev/minisign"

	"relayfix/manifest"
)

// Sign signs the manifest bytes mb as hotfix pack does: minisign's pre-hashed algorithm, with
// the package id and the manifest's SHA-256 in the trusted comment.
func Sign(key minisign.PrivateKey, m *manifest.Manifest, mb []byte, now time.Time) []byte {
	r := minisign.NewReader(bytes.NewReader(mb))
	io.Copy(io.Discard, r) // reading a bytes.Reader cannot fail
	untrusted := "signature from relayfix secret key " + KeyID(key.ID())
	return r.SignWithComments(key, trustedComment(m, mb, now), untrusted)
}

// VerifySignature checks sig, a minisign signature, over the bytes mb of the file named name
// against each of keys, and returns the id of the key that verified it and the signature's
// trusted comment. It accepts both of minisign's signature algorithms (legacy Ed25519 and the
// default pre-hashed one).
func VerifySignature(name string, mb, sig []byte, keys []minisign.PublicKey) (keyID uint64, trustedComment string, err error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return 0, "", err
	}
	if len(keys) == 0 {
		return 0, "", errors.New("no trusted keys to verify with")
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		if minisign.Verify(k, mb, sig) {
			return k.ID(), s.TrustedComment, nil
		}
		ids[i] = KeyID(k.ID())
	}
	for _, k := range keys {
		if k.ID() == s.KeyID {
			return 0, "", fmt.Errorf("signature check failed: %s does not match its signature by key %s (edited after signing?)", name, KeyID(s.KeyID))
		}
	}
	return 0, "", fmt.Errorf("signature check failed: %s is signed by key %s, which is not trusted (trusted: %s)", name, KeyID(s.KeyID), strings.Join(ids, ", "))
}

// Fields of the trusted comment hotfix pack writes, e.g.
// "relayfix-package id:KB910618 manifest-sha256:ab12… timestamp:1139888160". A signature made
// with the minisign tool carries minisign's own comment instead, and is checked on its own.
const (
	commentID     = "id:"
	commentSHA256 = "manifest-sha256:"
)

func trustedComment(m *manifest.Manifest, mb []byte, now time.Time) string {
	sum := sha256.Sum256(mb)
	return fmt.Sprintf("relayfix-package %s%s %s%s timestamp:%d", commentID, m.ID, commentSHA256, hex.EncodeToString(sum[:]), now.Unix())
}

// CheckTrustedComment checks the package id and manifest hash named in the trusted comment, when
// it names them, so a signature cannot be carried over to a different manifest unnoticed.
func CheckTrustedComment(c string, m *manifest.Manifest, mb []byte) error {
	for _, field := range strings.Fields(c) {
		if id, ok := strings.CutPrefix(field, commentID); ok && id != m.ID {
			return fmt.Errorf("trusted comment names package %s, manifest is %s", id, m.ID)
		}
		if h, ok := strings.CutPrefix(field, commentSHA256); ok {
			sum := sha256.Sum256(mb)
			if got := hex.EncodeToString(sum[:]); h != got {
				return fmt.Errorf("trusted comment says manifest sha256 %s, manifest has %s", h, got)
			}
		}
	}
	return nil
}
