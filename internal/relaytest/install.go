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

// OfferFix records, as hotfix does once it has verified a repository's metadata, a source at url
// whose targets offer package id fixing crashes of component with signature (and a service pack
// that fixes nothing). Nothing is signed: it stands for metadata hotfix already trusted.
func OfferFix(t testing.TB, root layout.Root, url, id, component, signature string) {
	t.Helper()
	type fix struct {
		Component string `json:"component"`
		Affected  string `json:"affected"`
		Signature string `json:"signature"`
		Summary   string `json:"summary"`
	}
	type entry struct {
		ID    string `json:"id"`
		Title string `json:"title"`
		Kind  string `json:"kind"`
		Fixes []fix  `json:"fixes,omitempty"`
	}
	target := func(e entry) map[string]any {
		return map[string]any{"length": 1, "hashes": map[string]string{"sha256": "00"}, "custom": map[string]any{"relayfix": e}}
	}
	md := map[string]any{
		"signed": map[string]any{"_type": "targets", "spec_version": "1.0.31", "version": 1, "expires": "2030-01-01T00:00:00Z",
			"targets": map[string]any{
				id + ".hfx": target(entry{ID: id, Title: "The message tracking component stops under heavy load while a message is delivered", Kind: "hotfix",
					Fixes: []fix{{Component: component, Affected: ">= 6.5.7638.1, < 6.5.7651.45", Signature: signature, Summary: "reads a delivered message"}}}),
				"SP2.hfx": target(entry{ID: "SP2", Kind: "servicepack"}),
			}},
		"signatures": []any{},
	}
	writeJSON(t, root.Join("hotfix/sources/src1/metadata/targets.json"), md)
	writeJSON(t, root.Join("hotfix/sources/sources.json"), []map[string]string{{"url": url, "dir": "src1"}})
}
