package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/klauspost/compress/zstd"

	"relayfix/manifest"
	"relayfix/verifier"
)

// A package file is a tar archive compressed with zstd. Its entries come in this order:
//
//	manifest.json            the manifest, canonical JSON (the signed bytes)
//	manifest.json.minisig    minisign signature of manifest.json
//	payload/<install path>   one regular file per row of the file table
//
// The manifest and its signature come first so that a reader can verify the signature before it
// looks at a single payload byte, and then check each payload as it streams past against the
// manifest it already trusts.
const (
	EntryManifest  = "manifest.json"
	EntrySignature = "manifest.json.minisig"
	PayloadDir     = "payload/"
)

// maxSignature bounds the signature entry: a minisign signature is about 300 bytes plus its
// comments.
const maxSignature = 4 << 10

// maxWindow bounds the memory the decompressor may use for its window, whatever a frame header
// asks for; hotfix pack writes frames with an 8 MiB window.
const maxWindow = 64 << 20

// maxTrailer bounds the zero padding allowed after the tar end marker (tar writers pad to a
// record of 10 KiB); anything beyond, or anything not zero, is trailing garbage.
const maxTrailer = 64 << 10

// Limits bound what reading a package may cost, whatever the package says about itself. They are
// checked against the archive's own headers before the bytes are read, so a decompression bomb
// is refused after a few kilobytes of work rather than after gigabytes.
type Limits struct {
	MaxPackage  int64 // size of the package file (compressed)
	MaxManifest int64 // size of manifest.json
	MaxFile     int64 // size of any one payload file
	MaxTotal    int64 // decompressed size of the whole archive
	MaxEntries  int   // number of archive entries
}

// orDefault returns l with each zero field set from DefaultLimits.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxPackage == 0 {
		l.MaxPackage = d.MaxPackage
	}
	if l.MaxManifest == 0 {
		l.MaxManifest = d.MaxManifest
	}
	if l.MaxFile == 0 {
		l.MaxFile = d.MaxFile
	}
	if l.MaxTotal == 0 {
		l.MaxTotal = d.MaxTotal
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = d.MaxEntries
	}
	return l
}

// DefaultLimits returns limits that fit relayfix's own packages with a wide margin: its largest
// payloads are ~20 MB binaries.
func DefaultLimits() Limits {
	return Limits{
		MaxPackage:  1 << 30,
		MaxManifest: manifest.MaxSize,
		MaxFile:     512 << 20,
		MaxTotal:    1 << 30,
		MaxEntries:  10000,
	}
}

// OpenOptions say how Open verifies and where it extracts.
type OpenOptions struct {
	// Keys are the trusted keys; the manifest's signature must verify with one of them.
	Keys []minisign.PublicKey
	// StageDir is where verified payload files are extracted, each at its install path below
	// StageDir (created if missing; a file already at a staged path is replaced). Empty means
	// verify only and write nothing.
	StageDir string
	// Limits bound the cost of reading; a zero field takes its value from DefaultLimits.
	Limits Limits
	// Now is the time expiry is checked against; zero means time.Now().
	Now time.Time
	// OnFile, when set, is called with each payload's report as soon as it is checked, passed or
	// failed, so a caller can show progress and the failing file's checks.
	OnFile func(verifier.FileReport)
	// Progress, when set, is called as the package file is read, with the bytes read so far and
	// the file's size (Open only).
	Progress func(done, total int64)
}

// Opened is a package whose signature and every payload file verified.
type Opened struct {
	Manifest       *manifest.Manifest
	ManifestBytes  []byte // exactly the signed bytes
	Signature      []byte // the manifest.json.minisig file
	TrustedComment string // the signature's trusted comment
	KeyID          uint64 // id of the trusted key that verified the signature
	// Staged maps each install path to its extracted file, when StageDir was set.
	Staged map[string]string
	// Report holds, per file in archive order, each check and its result.
	Report []verifier.FileReport
}

// Open reads the package at path and verifies it in one streaming pass: first the signature over
// manifest.json against opts.Keys, then each payload entry against the verified manifest (size,
// SHA-256, file version, platform and the entry's time against the manifest date). With
// opts.StageDir set, each payload is copied to a temporary file while it is checked and renamed
// to its staged name only after it passed; on any failure everything Open wrote is removed
// again. Errors name the entry and the failed check.
func Open(ctx context.Context, path string, opts OpenOptions) (*Opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open package: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open package %s: %w", path, err)
	}
	lim := opts.Limits.orDefault()
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open package %s: not a regular file", path)
	}
	if fi.Size() > lim.MaxPackage {
		return nil, fmt.Errorf("open package %s: %d bytes is over the %d-byte limit", path, fi.Size(), lim.MaxPackage)
	}
	var in io.Reader = f
	if opts.Progress != nil {
		in = io.TeeReader(f, &meter{total: fi.Size(), report: opts.Progress})
	}
	o, err := readPackage(ctx, io.LimitReader(in, lim.MaxPackage+1), opts, lim)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	return o, nil
}

// OpenReader is Open for a package that is not a file, such as one arriving over the network.
func OpenReader(ctx context.Context, r io.Reader, opts OpenOptions) (*Opened, error) {
	lim := opts.Limits.orDefault()
	return readPackage(ctx, &cappedReader{r: r, left: lim.MaxPackage, what: "package"}, opts, lim)
}

func readPackage(ctx context.Context, r io.Reader, opts OpenOptions, lim Limits) (o *Opened, err error) {
	dec, err := zstd.NewReader(r,
		// Two goroutines let decompression of the next block overlap the hashing of this one.
		zstd.WithDecoderConcurrency(2),
		zstd.WithDecoderMaxMemory(maxWindow),
		zstd.WithDecoderMaxWindow(maxWindow),
	)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	defer dec.Close()
	stream := &cappedReader{r: &ctxReader{ctx: ctx, r: dec}, left: lim.MaxTotal + maxTrailer, what: "decompressed archive"}
	tr := tar.NewReader(stream)

	mb, err := readHead(tr, EntryManifest, lim.MaxManifest)
	if err != nil {
		return nil, err
	}
	sig, err := readHead(tr, EntrySignature, maxSignature)
	if err != nil {
		return nil, err
	}
	o = &Opened{ManifestBytes: mb, Signature: sig}
	if o.KeyID, o.TrustedComment, err = verifySignature(mb, sig, opts.Keys); err != nil {
		return nil, err
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EntryManifest, err)
	}
	o.Manifest = m
	if err := verifier.CheckTrustedComment(o.TrustedComment, m, mb); err != nil {
		return nil, fmt.Errorf("%s: %w", EntrySignature, err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if m.Expired(now) {
		return nil, fmt.Errorf("%s: package %s expired at %s", EntryManifest, m.ID, m.Expires.UTC().Format(time.RFC3339))
	}
	want, err := fileTable(m, lim)
	if err != nil {
		return nil, err
	}

	st := &stager{dir: opts.StageDir}
	defer func() {
		if err != nil {
			st.undo()
		}
	}()
	seen := make(map[string]bool, len(want))
	buf := make([]byte, 256<<10)
	for entries := 2; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if entries >= lim.MaxEntries {
			return nil, fmt.Errorf("archive has more than %d entries", lim.MaxEntries)
		}
		rel, err := payloadPath(hdr)
		if err != nil {
			return nil, err
		}
		if rel == "" {
			continue // a plain directory; staging creates the ones it needs
		}
		row, ok := want[rel]
		if !ok {
			return nil, fmt.Errorf("archive entry %s: not in the manifest's file table", hdr.Name)
		}
		if seen[rel] {
			return nil, fmt.Errorf("payload %s: duplicate entry", rel)
		}
		seen[rel] = true
		if hdr.Size > row.Size {
			// Refused from the header alone: the bytes are never decompressed.
			rep := verifier.FileReport{Path: rel, Checks: []verifier.Check{{Name: verifier.CheckSize, Want: fmt.Sprint(row.Size), Got: fmt.Sprint(hdr.Size)}}}
			if opts.OnFile != nil {
				opts.OnFile(rep)
			}
			return nil, fmt.Errorf("payload %w", rep.Err())
		}
		rep, err := st.extract(tr, hdr, row, buf)
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", rel, err)
		}
		o.Report = append(o.Report, rep)
		if opts.OnFile != nil {
			opts.OnFile(rep)
		}
		if err := rep.Err(); err != nil {
			return nil, fmt.Errorf("payload %w", err)
		}
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return nil, fmt.Errorf("payload %s: missing from the archive", f.Path)
		}
	}
	if err := checkTrailer(stream); err != nil {
		return nil, err
	}
	o.Staged = st.staged
	return o, nil
}

// Peeked is a package's manifest and signature, read without verifying anything.
type Peeked struct {
	ManifestBytes []byte
	Signature     []byte
	// Manifest is the parsed manifest; nil when it does not parse, with ParseErr saying why.
	Manifest *manifest.Manifest
	ParseErr error
}

// Peek reads the manifest and signature at the head of the package at path, and parses the
// manifest, without checking the signature or reading any payload. It serves for showing what a
// package claims to be; nothing it returns may be trusted before Verify passes.
func Peek(ctx context.Context, path string, lim Limits) (*Peeked, error) {
	lim = lim.orDefault()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open package: %w", err)
	}
	defer f.Close()
	dec, err := zstd.NewReader(&ctxReader{ctx: ctx, r: f}, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxWindow), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return nil, fmt.Errorf("package %s: decompress: %w", path, err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	var p Peeked
	if p.ManifestBytes, err = readHead(tr, EntryManifest, lim.MaxManifest); err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if p.Signature, err = readHead(tr, EntrySignature, maxSignature); err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if p.Manifest, p.ParseErr = manifest.Parse(p.ManifestBytes); p.ParseErr != nil {
		p.ParseErr = fmt.Errorf("%s: %w", EntryManifest, p.ParseErr)
	}
	return &p, nil
}

// Verify checks the peeked signature over the manifest against keys, as Open does first, and
// returns the id of the key that verified it and the signature's trusted comment.
func (p *Peeked) Verify(keys []minisign.PublicKey) (keyID uint64, trustedComment string, err error) {
	return verifySignature(p.ManifestBytes, p.Signature, keys)
}

func verifySignature(mb, sig []byte, keys []minisign.PublicKey) (uint64, string, error) {
	id, comment, err := verifier.VerifySignature(EntryManifest, mb, sig, keys)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", EntrySignature, err)
	}
	return id, comment, nil
}

// readHead reads one of the two entries that must open the archive, in order.
// ErrNotPackage is returned for a file that is not a package at all, such as a public key or
// a manifest given where the .hfx file belongs.
var ErrNotPackage = errors.New("not a relayfix package (not a zstd-compressed archive)")

func readHead(tr *tar.Reader, name string, limit int64) ([]byte, error) {
	hdr, err := tr.Next()
	if err != nil {
		if errors.Is(err, zstd.ErrMagicMismatch) {
			return nil, ErrNotPackage
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if hdr.Name != name {
		return nil, fmt.Errorf("archive entry %s: want %s here (the manifest and its signature come first)", hdr.Name, name)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("archive entry %s: not a regular file", name)
	}
	if hdr.Size > limit {
		return nil, fmt.Errorf("archive entry %s: %d bytes is over the %d-byte limit", name, hdr.Size, limit)
	}
	b := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// fileTable indexes the manifest's rows by install path, refusing paths that could escape the
// staging directory and a table that breaks the limits.
func fileTable(m *manifest.Manifest, lim Limits) (map[string]manifest.File, error) {
	if len(m.Files)+2 > lim.MaxEntries {
		return nil, fmt.Errorf("%s: %d files is over the %d-entry limit", EntryManifest, len(m.Files), lim.MaxEntries)
	}
	want := make(map[string]manifest.File, len(m.Files))
	var total int64
	for _, f := range m.Files {
		if err := checkInstallPath(f.Path); err != nil {
			return nil, fmt.Errorf("%s: file %s: %w", EntryManifest, f.Path, err)
		}
		if _, dup := want[f.Path]; dup {
			return nil, fmt.Errorf("%s: file %s listed twice", EntryManifest, f.Path)
		}
		if f.Size < 0 || f.Size > lim.MaxFile {
			return nil, fmt.Errorf("%s: file %s: %d bytes is over the %d-byte limit", EntryManifest, f.Path, f.Size, lim.MaxFile)
		}
		total += f.Size
		if total > lim.MaxTotal {
			return nil, fmt.Errorf("%s: payload totals over the %d-byte limit", EntryManifest, lim.MaxTotal)
		}
		want[f.Path] = f
	}
	return want, nil
}

// checkInstallPath accepts a clean, relative, slash-separated path that stays below its root.
func checkInstallPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute path")
	case strings.Contains(p, `\`):
		return errors.New("backslash in path")
	case path.Clean(p) != p || !filepath.IsLocal(filepath.FromSlash(p)):
		return errors.New("path escapes the package or is not clean")
	}
	return nil
}

// payloadPath returns the install path of a payload entry, "" for a plain directory, or an
// error for any entry a package must not hold.
func payloadPath(hdr *tar.Header) (string, error) {
	name := hdr.Name
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("archive entry %s: absolute path", name)
	}
	clean := strings.TrimSuffix(name, "/")
	if clean == "" || !filepath.IsLocal(filepath.FromSlash(clean)) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("archive entry %s: path escapes the package", name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeDir:
		if clean+"/" != PayloadDir && (!strings.HasPrefix(clean, PayloadDir) || checkInstallPath(clean[len(PayloadDir):]) != nil) {
			return "", fmt.Errorf("archive entry %s: directory outside %s", name, PayloadDir)
		}
		return "", nil
	case tar.TypeSymlink:
		return "", fmt.Errorf("archive entry %s: symlink (to %s) not allowed", name, hdr.Linkname)
	case tar.TypeLink:
		return "", fmt.Errorf("archive entry %s: hard link (to %s) not allowed", name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return "", fmt.Errorf("archive entry %s: device or fifo not allowed", name)
	default:
		return "", fmt.Errorf("archive entry %s: entry type %q not allowed", name, hdr.Typeflag)
	}
	rel, ok := strings.CutPrefix(name, PayloadDir)
	if !ok || checkInstallPath(rel) != nil {
		return "", fmt.Errorf("archive entry %s: not a payload file (want %s<install path>)", name, PayloadDir)
	}
	return rel, nil
}

// checkTrailer accepts what may follow the tar end marker: zero padding, bounded.
func checkTrailer(r io.Reader) error {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := r.Read(buf)
		for _, b := range buf[:k] {
			if b != 0 {
				return errors.New("trailing garbage after the end of the archive")
			}
		}
		n += int64(k)
		if n > maxTrailer {
			return errors.New("trailing data after the end of the archive")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
	}
}
