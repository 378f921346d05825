package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest"
	"relayfix/packages/installdb"
)

func TestGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 99040: "99,040", 18358377: "18,358,377"} {
		if got := groupThousands(n); got != want {
			t.Errorf("groupThousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	db := installdb.DB{Files: []installdb.InstalledFile{{
		File: manifest.File{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking",
			Version: manifest.MustParseFileVersion("6.5.7651.45"), Size: 99040,
			Date: time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC), Platform: "linux/amd64", SHA256: "ab12"},
		Package: "KB910618",
	}}}
	os.MkdirAll(filepath.Join(root, "hotfix"), 0o755)
	if err := installdb.Save(layout.Root(root), &db); err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		utc  bool
		json bool
		want string
	}{
		{"local time names the zone", false, false,
			"File name\tFile version\tFile size\tDate\tTime\tPlatform\tPackage\n" +
				"msgtrack\t6.5.7651.45\t99,040\t14-Feb-2006\t04:36 CET\tlinux/amd64\tKB910618\n"},
		{"utc", true, false,
			"File name\tFile version\tFile size\tDate\tTime\tPlatform\tPackage\n" +
				"msgtrack\t6.5.7651.45\t99,040\t14-Feb-2006\t03:36 UTC\tlinux/amd64\tKB910618\n"},
		{"json is always UTC", false, true, `[
  {
    "name": "msgtrack",
    "path": "bin/msgtrack",
    "version": "6.5.7651.45",
    "size": 99040,
    "date": "2006-02-14T03:36:00Z",
    "platform": "linux/amd64",
    "sha256": "ab12",
    "package": "KB910618"
  }
]
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			g := &globalOptions{root: root, json: tt.json, stdout: &out, stderr: &errb}
			if err := runList(context.Background(), g, &listOptions{utc: tt.utc}, berlin); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tt.want)
			}
		})
	}
}
