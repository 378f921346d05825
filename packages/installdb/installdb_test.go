package installdb

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
)

func TestChecksum(t *testing.T) {
	root := layout.Root(t.TempDir())
	if err := os.MkdirAll(root.Hotfix(), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	db := &DB{Files: []InstalledFile{{File: record.File{Name: "msgtrack", Path: "bin/msgtrack", SHA256: sum}}}}
	tests := []struct {
		name, rel string
		db        string // "" saves db, "-" writes none, anything else is written as installed.json
		listed    bool
		err       string
	}{
		{name: "no database", rel: "bin/msgtrack", db: "-"},
		{name: "listed", rel: "bin/msgtrack", listed: true},
		{name: "not listed", rel: "bin/relayd"},
		{name: "corrupt", rel: "bin/msgtrack", db: "{", err: "is corrupt"},
		{name: "bad sum", rel: "bin/msgtrack", db: `{"files":[{"path":"bin/msgtrack","sha256":"xyz"}]}`, err: "bad SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(root.InstalledDB())
			switch tt.db {
			case "-":
			case "":
				if err := Save(root, db); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(root.InstalledDB(), []byte(tt.db), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, listed, err := Checksum(root, tt.rel)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Checksum = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil || listed != tt.listed {
				t.Fatalf("Checksum = %x, %v, %v; want listed %v", got, listed, err, tt.listed)
			}
			if listed && hex.EncodeToString(got) != sum {
				t.Errorf("sum %x, want %s", got, sum)
			}
		})
	}
}
