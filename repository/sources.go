package repository

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
)

// Source is a repository a root fetches packages from.
type Source struct {
	URL string `json:"url"`
	// Dir is the source's directory under ROOT/hotfix/sources: its trusted metadata in
	// metadata/, the packages fetched from it in cache/.
	Dir string `json:"dir"`
}

// Sources are the repositories of one install root, listed in ROOT/hotfix/sources/sources.json.
type Sources struct{ Root layout.Root }

func (s Sources) dir() string  { return s.Root.Sources() }
func (s Sources) list() string { return filepath.Join(s.dir(), "sources.json") }

// MetadataDir is where the source's trusted TUF metadata is kept.
func (s Sources) MetadataDir(src Source) string { return filepath.Join(s.dir(), src.Dir, "metadata") }

// CacheDir is where packages fetched from the source are kept, each only once verified.
func (s Sources) CacheDir(src Source) string { return filepath.Join(s.dir(), src.Dir, "cache") }

// List returns the sources, in the order they were added.
func (s Sources) List() ([]Source, error) {
	b, err := os.ReadFile(s.list())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	var out []Source
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("sources %s is corrupt: %w", s.list(), err)
	}
	return out, nil
}

// Add adds the repository at rawURL, trusting the root metadata trustedRoot (given out of band,
// as apt's keys are). The root must be valid TUF root metadata signed by its own root keys.
func (s Sources) Add(rawURL string, trustedRoot []byte) (Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return Source{}, fmt.Errorf("add source: %q is not an http or https URL", rawURL)
	}
	if port := u.Port(); strings.HasSuffix(u.Host, ":") || (port != "" && !validPort(port)) {
		return Source{}, fmt.Errorf("add source: %q has no valid port", rawURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Source{}, fmt.Errorf("add source: %q: a repository URL holds no credentials, query or fragment", rawURL)
	}
	norm := strings.TrimRight(u.String(), "/")
	if _, err := trustedmetadata.New(trustedRoot); err != nil {
		return Source{}, fmt.Errorf("add source %s: the trusted root is not valid root metadata signed by its own keys: %w", norm, err)
	}
	list, err := s.List()
	if err != nil {
		return Source{}, err
	}
	for _, src := range list {
		if src.URL == norm {
			return Source{}, fmt.Errorf("add source: %s is already a source", norm)
		}
	}
	sum := sha256.Sum256([]byte(norm))
	src := Source{URL: norm, Dir: hex.EncodeToString(sum[:8])}
	if err := os.MkdirAll(s.MetadataDir(src), 0o700); err != nil {
		return Source{}, fmt.Errorf("add source: %w", err)
	}
	if err := safefile.WriteFile(filepath.Join(s.MetadataDir(src), metadata.ROOT+".json"), trustedRoot, 0o644); err != nil {
		return Source{}, fmt.Errorf("add source: %w", err)
	}
	return src, s.save(append(list, src))
}

// Remove removes the source at rawURL and everything kept for it.
func (s Sources) Remove(rawURL string) error {
	list, err := s.List()
	if err != nil {
		return err
	}
	norm := strings.TrimRight(rawURL, "/")
	i := slices.IndexFunc(list, func(src Source) bool { return src.URL == norm })
	if i < 0 {
		return fmt.Errorf("remove source: %s is not a source: %w", norm, fs.ErrNotExist)
	}
	src := list[i]
	if err := s.save(slices.Delete(list, i, i+1)); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(s.dir(), src.Dir))
}

func (s Sources) save(list []Source) error {
	if list == nil {
		list = []Source{}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir(), 0o755); err != nil {
		return fmt.Errorf("save sources: %w", err)
	}
	return safefile.WriteFile(s.list(), append(b, '\n'), 0o644)
}

// validPort reports whether p is a TCP port number, 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}
