package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

// encryptedKeyFile writes priv encrypted with password the way minisign does, but with cheap
// scrypt costs (ops 2^15, mem 1 MiB, which minisign turns into N=1024, r=8, p=1) so that the test
// does not spend the gigabyte a real minisign key costs to open.
func encryptedKeyFile(t *testing.T, priv minisign.PrivateKey, password string) string {
	t.Helper()
	text, err := priv.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	const comment = "untrusted comment: minisign encrypted secret key\n"
	raw, err := base64.StdEncoding.DecodeString(string(text[len(comment):]))
	if err != nil {
		t.Fatal(err)
	}
	const ops, mem = 1 << 15, 1 << 20
	binary.LittleEndian.PutUint16(raw[2:], 0x6353) // kdf: scrypt
	salt := raw[6:38]
	rand.Read(salt)
	binary.LittleEndian.PutUint64(raw[38:], ops)
	binary.LittleEndian.PutUint64(raw[46:], mem)
	plain := raw[54:126] // key id and secret key
	msg := append([]byte{0x45, 0x64}, plain...)
	sum := blake2b.Sum256(msg)
	copy(raw[126:], sum[:])
	stream, err := scrypt.Key([]byte(password), salt, 1024, 8, 1, 104)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range stream {
		raw[54+i] ^= k
	}
	p := filepath.Join(t.TempDir(), "enc.key")
	if err := os.WriteFile(p, []byte(comment+base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSecretKeyEncrypted(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := encryptedKeyFile(t, priv, "correct horse")
	if !minisign.IsEncrypted(mustRead(t, path)) {
		t.Fatal("the test key is not recognized as encrypted")
	}

	t.Setenv(envKeyPassword, "") // restored after the test
	os.Unsetenv(envKeyPassword)
	if _, err := readSecretKey(path); err == nil || !strings.Contains(err.Error(), "is encrypted: set "+envKeyPassword) {
		t.Fatalf("no password: %v", err)
	}
	t.Setenv(envKeyPassword, "wrong")
	if _, err := readSecretKey(path); err == nil || !strings.Contains(err.Error(), "decryption failed") {
		t.Fatalf("wrong password: %v", err)
	}
	t.Setenv(envKeyPassword, "correct horse")
	k, err := readSecretKey(path)
	if err != nil {
		t.Fatal(err)
	}
	sig := minisign.Sign(k, []byte("manifest"))
	if !minisign.Verify(pub, []byte("manifest"), sig) {
		t.Fatal("the decrypted key does not sign for its public key")
	}
}

// TestKeygenKeyWorksWithLibrary: the secret key keygen writes (with the checksum minisign wants)
// still reads back through the library and signs for the public key written beside it.
func TestKeygenKeyWorksWithLibrary(t *testing.T) {
	name := filepath.Join(t.TempDir(), "k")
	mustHotfix(t, "keygen", "-o", name)
	k, err := readSecretKey(name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	var pub minisign.PublicKey
	if err := pub.UnmarshalText(mustRead(t, name+".pub")); err != nil {
		t.Fatal(err)
	}
	if pub.ID() != k.ID() || !minisign.Verify(pub, []byte("x"), minisign.Sign(k, []byte("x"))) {
		t.Fatal("keygen's key pair does not match")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
