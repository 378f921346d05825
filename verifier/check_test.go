package verifier

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/internal/layout"
	"relayfix/internal/stamp"
	"relayfix/manifest"
)

func TestCheckFile(t *testing.T) {
	date := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	data := append(elfHeader(nativeOrder(), 0, nativeMachine(t)), what(stamp.TrackFixedVersion)...)
	sum := sha256.Sum256(data)
	p := filepath.Join(t.TempDir(), "msgtrack")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, date, date); err != nil {
		t.Fatal(err)
	}
	good := manifest.File{
		Name: "msgtrack", Path: "bin/msgtrack",
		Version:  manifest.MustParseFileVersion(stamp.TrackFixedVersion),
		Size:     int64(len(data)),
		Date:     date,
		Platform: "linux/" + runtime.GOARCH,
		SHA256:   hex.EncodeToString(sum[:]),
	}
	tests := []struct {
		name  string
		edit  func(f *manifest.File)
		check string // the failing check, "" when all pass
		msg   string
	}{
		{"matches", func(*manifest.File) {}, "", ""},
		{"size", func(f *manifest.File) { f.Size++ }, CheckSize, "bin/msgtrack: size mismatch: manifest says"},
		{"sha256", func(f *manifest.File) { f.SHA256 = strings.Repeat("ab", 32) }, CheckSHA256, "sha256 mismatch: manifest says abab"},
		{"version", func(f *manifest.File) { f.Version[3]++ }, CheckVersion, "version mismatch: manifest says 6.5.7651.46, file has 6.5.7651.45"},
		{"platform", func(f *manifest.File) { f.Platform = "windows/386" }, CheckPlatform, "platform mismatch: manifest says windows/386, file has linux/"},
		{"date one second off", func(f *manifest.File) { f.Date = f.Date.Add(time.Second) }, CheckDate, "date mismatch: manifest says 2006-02-14T03:36:01Z, file has 2006-02-14T03:36:00Z"},
		{"same instant in another zone", func(f *manifest.File) { f.Date = f.Date.In(time.FixedZone("CET", 3600)) }, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := good
			tc.edit(&want)
			rep, err := CheckFile(p, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Checks) != 5 {
				t.Fatalf("%d checks, want 5", len(rep.Checks))
			}
			err = rep.Err()
			if tc.check == "" {
				if err != nil || !rep.OK() {
					t.Fatalf("unexpected failure: %v", err)
				}
				return
			}
			var mm *MismatchError
			if !errors.As(err, &mm) || mm.Check != tc.check || rep.OK() {
				t.Fatalf("got %v, want a %s mismatch", err, tc.check)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
	if _, err := CheckFile(filepath.Join(t.TempDir(), "missing"), good); err == nil {
		t.Error("no error for a missing file")
	}
	if _, err := CheckFile(t.TempDir(), good); err == nil {
		t.Error("no error for a directory")
	}
}

func nativeOrder() binary.ByteOrder { return binary.LittleEndian }

func nativeMachine(t *testing.T) elf.Machine {
	for m, arch := range elfArch {
		if arch == runtime.GOARCH {
			return m
		}
	}
	t.Fatalf("no ELF machine known for %s", runtime.GOARCH)
	return 0
}

func TestLoadTrustedKeys(t *testing.T) {
	root := layout.Root(t.TempDir())
	if _, err := LoadTrustedKeys(root, ""); err == nil || !strings.Contains(err.Error(), "no trusted keys") {
		t.Fatalf("empty root: %v", err)
	}
	write := func(path string, k minisign.PublicKey) {
		t.Helper()
		b, _ := k.MarshalText()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pubs []minisign.PublicKey
	for range 3 {
		pub, _, err := minisign.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
	}
	write(filepath.Join(root.Trusted(), "a.pub"), pubs[0])
	write(filepath.Join(root.Trusted(), "b.pub"), pubs[1])
	os.WriteFile(filepath.Join(root.Trusted(), "README"), []byte("not a key"), 0o644)
	flagKey := filepath.Join(t.TempDir(), "flag.pub")
	write(flagKey, pubs[2])

	keys, err := LoadTrustedKeys(root, "")
	if err != nil || len(keys) != 2 || !keys[0].Equal(pubs[0]) || !keys[1].Equal(pubs[1]) {
		t.Fatalf("root keys: %v, %v", keys, err)
	}
	keys, err = LoadTrustedKeys(root, flagKey)
	if err != nil || len(keys) != 1 || !keys[0].Equal(pubs[2]) {
		t.Fatalf("--pubkey must override the root's keys: %v, %v", keys, err)
	}
	keys, err = LoadTrustedKeys(root, flagKey+","+filepath.Join(root.Trusted(), "a.pub"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("comma-separated --pubkey: %v, %v", keys, err)
	}
	os.WriteFile(filepath.Join(root.Trusted(), "c.pub"), []byte("garbage\n"), 0o644)
	if _, err := LoadTrustedKeys(root, ""); err == nil || !strings.Contains(err.Error(), "c.pub") {
		t.Fatalf("a corrupt key file must fail, naming it: %v", err)
	}
}
