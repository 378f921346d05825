package relaytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/manifest/record"
	"relayfix/packages/installdb"
	"relayfix/packages/store"
)

// Installed is a file a test records as installed on a root, as hotfix would have.
type Installed struct {
	Name, Path, Component string
	Version               string // four-part file version
	Package               string // the package that installed it
	Src                   string // copied to ROOT/Path when set; the row records its size and hash
}

// Install writes ROOT/product.json (the given product version and service pack level) and an
// installed-files database holding files, in the formats hotfix writes, copying each Src into
// place. It replaces what an earlier call recorded, as a hotfix transaction would.
func Install(t testing.TB, root layout.Root, productVersion string, servicePack int, files ...Installed) {
	t.Helper()
	var db installdb.DB
	pkgs := map[string]bool{}
	for _, f := range files {
		v, err := record.ParseFileVersion(f.Version)
		if err != nil {
			t.Fatal(err)
		}
		row := installdb.InstalledFile{
			File: record.File{Name: f.Name, Path: f.Path, Component: f.Component, Version: v,
				Date: time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC), Platform: runtime.GOOS + "/" + runtime.GOARCH},
			Package: f.Package, Installed: time.Now().UTC().Truncate(time.Second),
		}
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				t.Fatal(err)
			}
			dst := root.Join(f.Path)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			tmp := dst + ".new"
			if err := os.WriteFile(tmp, b, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, dst); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			row.SHA256, row.Size = hex.EncodeToString(sum[:]), int64(len(b))
		}
		db.Files = append(db.Files, row)
		pkgs[f.Package] = true
	}
	product := installdb.Product{Name: "relayfix", Version: productVersion, ServicePack: servicePack}
	for id := range pkgs {
		product.Packages = append(product.Packages, id)
	}
	writeJSON(t, root.InstalledDB(), db)
	writeJSON(t, root.Product(), product)
}

// AppendHistory appends transactions to ROOT/hotfix/history.jsonl.
func AppendHistory(t testing.TB, root layout.Root, entries ...store.HistoryEntry) {
	t.Helper()
	f, err := os.OpenFile(root.History(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
