package repository

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"relayfix/internal/safefile"
	"relayfix/packages/archive"
)

// Roles are the four top-level TUF roles, each signed by its own key.
var roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Expiry is how long each role's metadata stays valid after it is signed. The short-lived roles
// bound how long a freeze can go unnoticed; re-signing them is what 'hotfix repo refresh' is for.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry fits a repository re-signed daily from cron.
func DefaultExpiry() Expiry {
	return Expiry{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 2 * 24 * time.Hour}
}

func (e Expiry) of(role string) time.Duration {
	switch role {
	case metadata.ROOT:
		return e.Root
	case metadata.TARGETS:
		return e.Targets
	case metadata.SNAPSHOT:
		return e.Snapshot
	}
	return e.Timestamp
}

// Publisher maintains a repository in Dir: the served files in Dir/repository (point a web
// server there) and the private keys in Keys (Dir/keys unless set), which must never be served.
type Publisher struct {
	Dir    string
	Keys   string
	Expiry Expiry
	// Now is the signing time; nil means time.Now. Tests set it to make metadata that is already
	// expired.
	Now func() time.Time

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

// Served returns the directory a web server must serve: its URL is the source URL clients add.
func (p *Publisher) Served() string { return filepath.Join(p.Dir, "repository") }

func (p *Publisher) keyDir() string {
	if p.Keys != "" {
		return p.Keys
	}
	return filepath.Join(p.Dir, "keys")
}

func (p *Publisher) now() time.Time {
	if p.Now != nil {
		return p.Now().UTC()
	}
	return time.Now().UTC()
}

func (p *Publisher) expires(role string) time.Time {
	e := p.Expiry
	if e == (Expiry{}) {
		e = DefaultExpiry()
	}
	return p.now().Add(e.of(role)).Truncate(time.Second)
}

// Init creates a repository in p.Dir: a key per role (kept if the key directory already holds
// one, so keys can be made elsewhere and handed in), and version 1 of every role's metadata,
// with consistent snapshots. It refuses a directory that already holds a repository.
func (p *Publisher) Init() error {
	if _, err := os.Stat(filepath.Join(p.Served(), "1.root.json")); err == nil {
		return fmt.Errorf("init repository: %s already holds a repository", p.Dir)
	}
	if err := os.MkdirAll(filepath.Join(p.Served(), "targets"), 0o755); err != nil {
		return fmt.Errorf("init repository: %w", err)
	}
	if err := os.MkdirAll(p.keyDir(), 0o700); err != nil {
		return fmt.Errorf("init repository: %w", err)
	}
	p.root = metadata.Root(p.expires(metadata.ROOT))
	for _, role := range roles {
		key, err := p.loadOrMakeKey(role)
		if err != nil {
			return err
		}
		k, err := metadata.KeyFromPublicKey(key.Public())
		if err != nil {
			return fmt.Errorf("init repository: %s key: %w", role, err)
		}
		if err := p.root.Signed.AddKey(k, role); err != nil {
			return fmt.Errorf("init repository: %s key: %w", role, err)
		}
	}
	p.targets = metadata.Targets(p.expires(metadata.TARGETS))
	p.snapshot = metadata.Snapshot(p.expires(metadata.SNAPSHOT))
	p.timestamp = metadata.Timestamp(p.expires(metadata.TIMESTAMP))
	if err := p.writeRoot(); err != nil {
		return err
	}
	return p.publish(true)
}

// Open loads the current metadata of the repository in p.Dir.
func (p *Publisher) Open() error {
	dir := p.Served()
	var err error
	if p.root, err = metadata.Root().FromFile(filepath.Join(dir, "root.json")); err != nil {
		return fmt.Errorf("open repository %s: %w", p.Dir, err)
	}
	if p.targets, err = metadata.Targets().FromFile(filepath.Join(dir, "targets.json")); err != nil {
		return fmt.Errorf("open repository %s: %w", p.Dir, err)
	}
	if p.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(dir, "snapshot.json")); err != nil {
		return fmt.Errorf("open repository %s: %w", p.Dir, err)
	}
	if p.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(dir, "timestamp.json")); err != nil {
		return fmt.Errorf("open repository %s: %w", p.Dir, err)
	}
	return nil
}

// Add verifies each package file (the minisign signature over its manifest with keys, then every
// payload file against the file table) and publishes the ones that verified, all in one new
// version of the targets. A package that does not verify stops the whole add: nothing of it is
// published. A package whose id is already published is replaced.
func (p *Publisher) Add(ctx context.Context, paths []string, keys []minisign.PublicKey) ([]Entry, error) {
	if len(keys) == 0 {
		return nil, errors.New("add packages: no trusted keys to verify them with")
	}
	type verified struct {
		path string
		e    Entry
	}
	var vs []verified
	for _, path := range paths {
		o, err := archive.Open(ctx, path, archive.OpenOptions{Keys: keys, Now: p.now()})
		if err != nil {
			return nil, fmt.Errorf("add %s: refused: %w", path, err)
		}
		vs = append(vs, verified{path, entryOf(o.Manifest)})
	}
	var added []Entry
	for _, v := range vs {
		data, err := os.ReadFile(v.path)
		if err != nil {
			return nil, fmt.Errorf("add %s: %w", v.path, err)
		}
		name := v.e.ID + ".hfx"
		tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
		if err != nil {
			return nil, fmt.Errorf("add %s: %w", v.path, err)
		}
		custom, err := json.Marshal(customMeta{Relayfix: v.e})
		if err != nil {
			return nil, fmt.Errorf("add %s: %w", v.path, err)
		}
		raw := json.RawMessage(custom)
		tf.Custom = &raw
		// The package is in place under its hashed name before any metadata names it.
		dst := filepath.Join(p.Served(), "targets", hex.EncodeToString(tf.Hashes["sha256"])+"."+name)
		if err := safefile.WriteFile(dst, data, 0o644); err != nil {
			return nil, fmt.Errorf("add %s: %w", v.path, err)
		}
		for old := range p.targets.Signed.Targets {
			if strings.EqualFold(old, name) {
				delete(p.targets.Signed.Targets, old)
			}
		}
		p.targets.Signed.Targets[name] = tf
		e := v.e
		e.Target, e.Length = name, tf.Length
		added = append(added, e)
	}
	p.targets.Signed.Version++
	p.targets.Signed.Expires = p.expires(metadata.TARGETS)
	if err := p.publish(true); err != nil {
		return nil, err
	}
	return added, nil
}

// Refresh re-signs, with a new version and expiry, every role whose metadata expires within the
// given time, and always the timestamp (a cron job runs it more often than the timestamp
// expires). It returns the roles it re-signed.
func (p *Publisher) Refresh(within time.Duration) ([]string, error) {
	limit := p.now().Add(within)
	var done []string
	if p.root.Signed.Expires.Before(limit) {
		p.root.Signed.Version++
		p.root.Signed.Expires = p.expires(metadata.ROOT)
		if err := p.writeRoot(); err != nil {
			return nil, err
		}
		done = append(done, metadata.ROOT)
	}
	targets := p.targets.Signed.Expires.Before(limit)
	if targets {
		p.targets.Signed.Version++
		p.targets.Signed.Expires = p.expires(metadata.TARGETS)
		done = append(done, metadata.TARGETS)
	}
	snapshot := targets || p.snapshot.Signed.Expires.Before(limit)
	if snapshot {
		done = append(done, metadata.SNAPSHOT)
	}
	if err := p.publishFrom(targets, snapshot); err != nil {
		return nil, err
	}
	return append(done, metadata.TIMESTAMP), nil
}

// RotateRootKey replaces the root key with newKey: the new root version is signed by the old key
// and the new one, so that a client trusting the old root can follow, and the old key signs
// nothing after it. It then re-signs the other roles under the new root.
func (p *Publisher) RotateRootKey(newKey ed25519.PrivateKey) error {
	old, err := p.loadKey(metadata.ROOT)
	if err != nil {
		return err
	}
	oldK, err := metadata.KeyFromPublicKey(old.Public())
	if err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	newK, err := metadata.KeyFromPublicKey(newKey.Public())
	if err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	oldID, _ := oldK.ID()
	if err := p.root.Signed.RevokeKey(oldID, metadata.ROOT); err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	if err := p.root.Signed.AddKey(newK, metadata.ROOT); err != nil {
		return fmt.Errorf("rotate root key: %w", err)
	}
	p.root.Signed.Version++
	p.root.Signed.Expires = p.expires(metadata.ROOT)
	p.root.ClearSignatures()
	for _, k := range []ed25519.PrivateKey{old, newKey} {
		if err := sign(p.root, k); err != nil {
			return fmt.Errorf("rotate root key: %w", err)
		}
	}
	if err := p.saveKey(metadata.ROOT, newKey); err != nil {
		return err
	}
	if err := p.writeSigned(p.root, metadata.ROOT, true); err != nil {
		return err
	}
	return p.publish(true)
}

// List returns the published packages, by id.
func (p *Publisher) List() ([]Entry, error) {
	return entries(p.targets.Signed.Targets)
}

// writeRoot signs the root with the root key and writes it.
func (p *Publisher) writeRoot() error {
	key, err := p.loadKey(metadata.ROOT)
	if err != nil {
		return err
	}
	p.root.ClearSignatures()
	if err := sign(p.root, key); err != nil {
		return fmt.Errorf("sign root: %w", err)
	}
	return p.writeSigned(p.root, metadata.ROOT, true)
}

// publish signs and writes the targets (if changed), then a new snapshot and timestamp.
func (p *Publisher) publish(targets bool) error { return p.publishFrom(targets, true) }

// publishFrom writes, in the order a client reads them backwards (targets, snapshot, then the
// timestamp that makes them current), each role that changed. The timestamp is the commit point:
// until it is written, clients see the previous consistent set.
func (p *Publisher) publishFrom(targets, snapshot bool) error {
	if targets {
		if err := p.signRole(p.targets, metadata.TARGETS); err != nil {
			return err
		}
		p.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(p.targets.Signed.Version)
	}
	if snapshot {
		p.snapshot.Signed.Version++
		p.snapshot.Signed.Expires = p.expires(metadata.SNAPSHOT)
		if err := p.signRole(p.snapshot, metadata.SNAPSHOT); err != nil {
			return err
		}
		p.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(p.snapshot.Signed.Version)
	}
	p.timestamp.Signed.Version++
	p.timestamp.Signed.Expires = p.expires(metadata.TIMESTAMP)
	return p.signRole(p.timestamp, metadata.TIMESTAMP)
}

type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
	ToBytes(pretty bool) ([]byte, error)
}

func (p *Publisher) signRole(md signable, role string) error {
	key, err := p.loadKey(role)
	if err != nil {
		return err
	}
	md.ClearSignatures()
	if err := sign(md, key); err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	return p.writeSigned(md, role, role != metadata.TIMESTAMP)
}

func sign(md signable, key ed25519.PrivateKey) error {
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return err
	}
	_, err = md.Sign(s)
	return err
}

// writeSigned writes role's metadata durably: as VERSION.ROLE.json for consistent snapshots
// (every role but the timestamp), and as ROLE.json, the current one, which the publisher reads
// back and an operator hands out as the trusted root.
func (p *Publisher) writeSigned(md signable, role string, versioned bool) error {
	b, err := md.ToBytes(true)
	if err != nil {
		return fmt.Errorf("write %s: %w", role, err)
	}
	if versioned {
		var v struct {
			Signed struct{ Version int64 } `json:"signed"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("write %s: %w", role, err)
		}
		if err := safefile.WriteFile(filepath.Join(p.Served(), fmt.Sprintf("%d.%s.json", v.Signed.Version, role)), b, 0o644); err != nil {
			return err
		}
	}
	return safefile.WriteFile(filepath.Join(p.Served(), role+".json"), b, 0o644)
}

func (p *Publisher) keyPath(role string) string { return filepath.Join(p.keyDir(), role+".pem") }

func (p *Publisher) loadOrMakeKey(role string) (ed25519.PrivateKey, error) {
	k, err := p.loadKey(role)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	_, k, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make %s key: %w", role, err)
	}
	return k, p.saveKey(role, k)
}

func (p *Publisher) loadKey(role string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(p.keyPath(role))
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", role, err)
	}
	return ParsePrivateKey(b)
}

func (p *Publisher) saveKey(role string, k ed25519.PrivateKey) error {
	b, err := MarshalPrivateKey(k)
	if err != nil {
		return fmt.Errorf("save %s key: %w", role, err)
	}
	return safefile.WriteFile(p.keyPath(role), b, 0o600)
}

// MarshalPrivateKey encodes an Ed25519 key as PKCS #8 PEM, the form openssl reads and writes.
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PKCS #8 PEM Ed25519 key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not Ed25519", k)
	}
	return ek, nil
}

// entries turns targets into Entries sorted by id. A target without relayfix's custom metadata
// is not a package this product published, and is left out.
func entries(targets map[string]*metadata.TargetFiles) ([]Entry, error) {
	var out []Entry
	for name, tf := range targets {
		if tf.Custom == nil {
			continue
		}
		var c customMeta
		if err := json.Unmarshal(*tf.Custom, &c); err != nil {
			return nil, fmt.Errorf("target %s: custom metadata: %w", name, err)
		}
		if c.Relayfix.ID == "" {
			continue
		}
		e := c.Relayfix
		e.Target, e.Length = name, tf.Length
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
