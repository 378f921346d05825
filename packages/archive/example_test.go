package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"aead.dev/minisign"

	"relayfix/manifest"
	"relayfix/packages/archive"
)

// A package is packed from a template and its payload files, then opened: the signature is
// checked first, then each payload file as it is extracted to the staging directory.
func Example() {
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	pub, priv, _ := minisign.GenerateKey(nil)

	// The payload: any stamped build will do; this one is the test suite's own.
	payload := map[string]string{"bin/msgtrack": archive.StampedTestBinary()}
	tmpl := &manifest.Manifest{
		Schema: manifest.SchemaVersion, ID: "KB910618", Kind: manifest.KindHotfix, Released: "2006-02-14",
		Title:    "The message tracking component crashes under heavy load",
		Product:  manifest.Product{Name: "relayfix"},
		Requires: manifest.Requires{ServicePack: 2},
		Files:    []manifest.File{{Name: "msgtrack", Path: "bin/msgtrack"}},
	}
	var pkg bytes.Buffer
	date := time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)
	m, err := archive.Pack(context.Background(), &pkg, tmpl, payload, priv, archive.PackOptions{Date: date})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("packed", m.ID, m.Files[0].Path, m.Files[0].Version)

	path := filepath.Join(dir, "KB910618.hfx")
	os.WriteFile(path, pkg.Bytes(), 0o644)
	o, err := archive.Open(context.Background(), path, archive.OpenOptions{
		Keys:     []minisign.PublicKey{pub},
		StageDir: filepath.Join(dir, "staging"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range o.Report {
		fmt.Println("verified", r.Path, len(r.Checks), "checks, staged as", filepath.Base(o.Staged[r.Path]))
	}
	// Output:
	// packed KB910618 bin/msgtrack 6.5.7651.45
	// verified bin/msgtrack 5 checks, staged as msgtrack
}
