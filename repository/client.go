package repository

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"relayfix/internal/layout"
	"relayfix/internal/safefile"
	"relayfix/packages/archive"
)

// Limits cap what the client reads of each file before any signature says how long it is: the
// metadata files without a signed length, and the packages (whose signed length is checked too).
type Limits struct {
	Root, Timestamp, Snapshot, Targets int64
	Package                            int64
}

// DefaultLimits fit a repository of thousands of packages with a wide margin.
func DefaultLimits() Limits {
	return Limits{Root: 512 << 10, Timestamp: 16 << 10, Snapshot: 2 << 20, Targets: 8 << 20,
		Package: archive.DefaultLimits().MaxPackage}
}

// Client reads the sources of one install root.
type Client struct {
	Root   layout.Root
	HTTP   *http.Client // nil means a client with a one-minute timeout
	Limits Limits       // zero means DefaultLimits
	// Now is the time metadata expiry is checked against; nil means time.Now.
	Now func() time.Time
}

// Catalog is what every source offers, after a refresh.
type Catalog struct {
	Packages []Available
}

// Available is a package and the source it comes from.
type Available struct {
	Entry
	Source string // URL
}

// RefusedError says that a source's metadata or a package was refused, and why.
type RefusedError struct {
	Source string
	What   string // what was wrong, in an operator's words
	Err    error  // go-tuf's error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("source %s refused: %s: %v", e.Source, e.What, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Refresh brings every source's trusted metadata up to date and returns what they offer. This
// writes only the sources' metadata under ROOT/hotfix/sources.
func (c *Client) Refresh(ctx context.Context) (*Catalog, error) {
	srcs, err := (Sources{c.Root}).List()
	if err != nil {
		return nil, err
	}
	cat := &Catalog{}
	for _, src := range srcs {
		u, err := c.updater(ctx, src)
		if err != nil {
			return nil, err
		}
		es, err := entries(u.GetTopLevelTargets())
		if err != nil {
			return nil, &RefusedError{Source: src.URL, What: "its targets metadata is not relayfix's", Err: err}
		}
		for _, e := range es {
			cat.Packages = append(cat.Packages, Available{Entry: e, Source: src.URL})
		}
	}
	return cat, nil
}

// Find returns the package with the id, or false.
func (c *Catalog) Find(id string) (Available, bool) {
	for _, a := range c.Packages {
		if strings.EqualFold(a.ID, id) {
			return a, true
		}
	}
	return Available{}, false
}

// Fetch refreshes the sources and returns the path of the package id in the cache under the
// root, downloading it if the cache does not already hold it. The file is written to its cache
// name only after its length and SHA-256 matched the signed targets metadata, so the cache holds
// nothing unverified. The caller still verifies the package's own signature and file table.
func (c *Client) Fetch(ctx context.Context, id string) (string, error) {
	srcs, err := (Sources{c.Root}).List()
	if err != nil {
		return "", err
	}
	if len(srcs) == 0 {
		return "", fmt.Errorf("fetch %s: no sources: add one with 'hotfix source add URL --trust FILE'", id)
	}
	for _, src := range srcs {
		u, err := c.updater(ctx, src)
		if err != nil {
			return "", err
		}
		es, err := entries(u.GetTopLevelTargets())
		if err != nil {
			return "", &RefusedError{Source: src.URL, What: "its targets metadata is not relayfix's", Err: err}
		}
		for _, e := range es {
			if strings.EqualFold(e.ID, id) {
				return c.download(u, src, e.Target)
			}
		}
	}
	return "", fmt.Errorf("fetch %s: no source offers it", id)
}

func (c *Client) download(u *updater.Updater, src Source, target string) (string, error) {
	info, err := u.GetTargetInfo(target)
	if err != nil {
		return "", &RefusedError{Source: src.URL, What: "package " + target, Err: err}
	}
	if info.Length > c.limits().Package {
		return "", &RefusedError{Source: src.URL, What: "package " + target + " is larger than this host accepts",
			Err: fmt.Errorf("%d bytes, limit %d", info.Length, c.limits().Package)}
	}
	dir := Sources{c.Root}.CacheDir(src)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("fetch %s: %w", target, err)
	}
	final := filepath.Join(dir, hex.EncodeToString(info.Hashes["sha256"])+"."+target)
	if p, _, err := u.FindCachedTarget(info, final); err == nil && p != "" {
		return p, nil
	}
	// DownloadTarget checks length and hashes before it writes anything; the file goes to a
	// temporary name, then is synced and renamed, so a crash leaves no partial file named as a
	// package.
	// A download a killed process left behind was verified before it was written, but has no
	// name a lookup finds: remove it.
	if stale, _ := filepath.Glob(filepath.Join(dir, ".download-*")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	tmp := filepath.Join(dir, ".download-"+strconv.Itoa(os.Getpid()))
	defer os.Remove(tmp)
	if _, _, err := u.DownloadTarget(info, tmp, ""); err != nil {
		return "", failure(src, err, "package "+target)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = safefile.SyncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", target, err)
	}
	return final, nil
}

func (c *Client) limits() Limits {
	l, d := c.Limits, DefaultLimits()
	return Limits{Root: cmp.Or(l.Root, d.Root), Timestamp: cmp.Or(l.Timestamp, d.Timestamp),
		Snapshot: cmp.Or(l.Snapshot, d.Snapshot), Targets: cmp.Or(l.Targets, d.Targets), Package: cmp.Or(l.Package, d.Package)}
}

// updater returns a refreshed TUF updater for src. It starts from the newest root this host
// trusts (kept in the metadata directory), so a key rotation once followed stays followed and a
// rollback below what was once seen is refused.
func (c *Client) updater(ctx context.Context, src Source) (*updater.Updater, error) {
	mdir := Sources{c.Root}.MetadataDir(src)
	trusted, err := os.ReadFile(filepath.Join(mdir, metadata.ROOT+".json"))
	if err != nil {
		return nil, fmt.Errorf("source %s: trusted root: %w", src.URL, err)
	}
	cfg, err := config.New(src.URL, trusted)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.URL, err)
	}
	l := c.limits()
	cfg.RootMaxLength, cfg.TimestampMaxLength, cfg.SnapshotMaxLength, cfg.TargetsMaxLength = l.Root, l.Timestamp, l.Snapshot, l.Targets
	cfg.LocalMetadataDir = mdir
	cfg.LocalTargetsDir = Sources{c.Root}.CacheDir(src)
	cfg.Fetcher = &fetcher{ctx: ctx, client: c.httpClient()}
	u, err := updater.New(cfg)
	if err != nil {
		return nil, &RefusedError{Source: src.URL, What: "the trusted root", Err: err}
	}
	if c.Now != nil {
		u.UnsafeSetRefTime(c.Now())
	}
	if err := u.Refresh(); err != nil {
		return nil, failure(src, err, "metadata")
	}
	// go-tuf renames the metadata it trusts into place without fsync; the rollback protection
	// must survive a power cut, so make it durable before anything acts on it.
	if err := syncFiles(mdir); err != nil {
		return nil, fmt.Errorf("source %s: %w", src.URL, err)
	}
	return u, nil
}

// syncFiles fsyncs every file in dir, then dir itself.
func syncFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	for _, en := range ents {
		if !en.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, en.Name()))
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", en.Name(), err)
		}
	}
	return safefile.SyncDir(dir)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: time.Minute}
}

// failure turns an error of go-tuf's into one that says what was wrong: a *RefusedError for
// something that did not verify, a plain error for a repository that could not be reached.
func failure(src Source, err error, what string) error {
	// go-tuf counts a body longer than allowed as a download error too; it is a refusal.
	if errors.Is(err, &metadata.ErrDownload{}) && !errors.Is(err, &metadata.ErrDownloadLengthMismatch{}) {
		return fmt.Errorf("source %s: %s could not be downloaded: %w", src.URL, what, err)
	}
	return &RefusedError{Source: src.URL, What: explain(err, what), Err: err}
}

// explain names, in an operator's words, the attack or fault go-tuf refused.
func explain(err error, what string) string {
	switch {
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return what + " expired (a freeze: the repository serves stale metadata)"
	case errors.Is(err, &metadata.ErrBadVersionNumber{}), errors.Is(err, &metadata.ErrEqualVersionNumber{}):
		return what + " has a version that does not match what is trusted (rolled back, or mixed and matched from different versions)"
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return what + " is not signed by the keys the trusted root names"
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return what + " does not match its signed length and hash (tampered, or mixed and matched)"
	case errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		return what + " is larger than declared (endless data)"
	}
	return what + " could not be verified"
}

// fetcher is go-tuf's Fetcher with a context, so that a refresh can be cancelled, and with the
// length cap applied to the body whatever Content-Length says.
type fetcher struct {
	ctx    context.Context
	client *http.Client
}

func (f *fetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, urlPath, nil)
	if err != nil {
		return nil, err
	}
	res, err := f.client.Do(req)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: urlPath}
	}
	if res.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: Content-Length %d is more than the %d bytes allowed", urlPath, res.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxLength+1))
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the %d bytes allowed", urlPath, maxLength)}
	}
	return data, nil
}
