package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"aead.dev/minisign"
	"github.com/klauspost/compress/zstd"

	"relayfix/manifest"
	"relayfix/verifier"
)

// PackOptions tune Pack.
type PackOptions struct {
	// Date, when set, is the date and time every file row gets; otherwise each file's own
	// modification time is used. Either way it is UTC, truncated to the second.
	Date time.Time
	// Now dates the signature's trusted comment; zero means time.Now().
	Now time.Time
	// Progress, when set, is called as payload bytes go into the archive, with the bytes written
	// so far and the payload's total size.
	Progress func(done, total int64)
}

// Fill completes a manifest template from the payload files: for each row (and for each payload
// path the template does not list, appended in path order) it measures size, SHA-256, file
// version, platform and date from payload[install path], the source file. A version or platform
// the template already states must match what the file has.
func Fill(ctx context.Context, tmpl *manifest.Manifest, payload map[string]string, opts PackOptions) (*manifest.Manifest, error) {
	m := *tmpl
	if m.Schema == 0 {
		m.Schema = manifest.SchemaVersion
	}
	m.Files = slices.Clone(tmpl.Files)
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		if !listed[p] {
			m.Files = append(m.Files, manifest.File{Path: p})
		}
	}
	for i := range m.Files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := &m.Files[i]
		if err := checkInstallPath(f.Path); err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Path, err)
		}
		src, ok := payload[f.Path]
		if !ok {
			return nil, fmt.Errorf("file %s: no payload file given for it", f.Path)
		}
		d, err := verifier.DigestFile(src)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Path, err)
		}
		if d.VersionErr != nil {
			return nil, fmt.Errorf("file %s: %s: %w", f.Path, src, d.VersionErr)
		}
		if d.PlatformErr != nil {
			return nil, fmt.Errorf("file %s: %s: %w", f.Path, src, d.PlatformErr)
		}
		if !f.Version.IsZero() && f.Version != d.Version {
			return nil, fmt.Errorf("file %s: template says version %s, %s is stamped %s", f.Path, f.Version, src, d.Version)
		}
		if f.Platform != "" && f.Platform != d.Platform {
			return nil, fmt.Errorf("file %s: template says platform %s, %s is %s", f.Path, f.Platform, src, d.Platform)
		}
		if f.Name == "" {
			f.Name = path.Base(f.Path)
		}
		f.Size, f.SHA256, f.Version, f.Platform = d.Size, d.SHA256, d.Version, d.Platform
		f.Date = d.Date
		if !opts.Date.IsZero() {
			f.Date = opts.Date.UTC().Truncate(time.Second)
		}
	}
	return &m, nil
}

// Pack fills the template from the payload files (see Fill), signs the manifest's canonical bytes
// with key (minisign's pre-hashed algorithm, as minisign -S signs, with the package id and
// manifest hash in the trusted comment) and writes the package to w. It returns the filled
// manifest. payload maps each install path to its source file.
func Pack(ctx context.Context, w io.Writer, tmpl *manifest.Manifest, payload map[string]string, key minisign.PrivateKey, opts PackOptions) (*manifest.Manifest, error) {
	m, err := Fill(ctx, tmpl, payload, opts)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	mb, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	sig := verifier.Sign(key, m, mb, now)
	if err := writeArchive(ctx, w, m, mb, sig, payload, opts.Progress); err != nil {
		return nil, fmt.Errorf("pack %s: %w", m.ID, err)
	}
	return m, nil
}

// PackSigned writes a package from a finished manifest and a signature made elsewhere, for
// example with minisign -S: mb is written byte for byte as it was signed. Each payload file must
// match its row in size, SHA-256, version and platform; the entry is dated by the row.
func PackSigned(ctx context.Context, w io.Writer, mb, sig []byte, payload map[string]string) (*manifest.Manifest, error) {
	m, err := manifest.Parse(mb)
	if err != nil {
		return nil, fmt.Errorf("pack: %s: %w", EntryManifest, err)
	}
	for _, f := range m.Files {
		src, ok := payload[f.Path]
		if !ok {
			return nil, fmt.Errorf("pack %s: file %s: no payload file given for it", m.ID, f.Path)
		}
		d, err := verifier.DigestFile(src)
		if err != nil {
			return nil, fmt.Errorf("pack %s: file %s: %w", m.ID, f.Path, err)
		}
		d.Date = f.Date // the archive entry carries the row's date, whatever the source's mtime
		if err := d.Compare(f).Err(); err != nil {
			return nil, fmt.Errorf("pack %s: %s: %w", m.ID, src, err)
		}
	}
	if len(payload) != len(m.Files) {
		return nil, fmt.Errorf("pack %s: %d payload files given for %d manifest rows", m.ID, len(payload), len(m.Files))
	}
	if err := writeArchive(ctx, w, m, mb, sig, payload, nil); err != nil {
		return nil, fmt.Errorf("pack %s: %w", m.ID, err)
	}
	return m, nil
}

// writeArchive writes the package entries in their fixed order. Each payload is hashed again as
// it is copied, so a source file that changed after it was measured fails the pack instead of
// producing a package that cannot verify.
func writeArchive(ctx context.Context, w io.Writer, m *manifest.Manifest, mb, sig []byte, payload map[string]string, progress func(done, total int64)) error {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	tw := tar.NewWriter(enc)
	head := func(name string, b []byte, mode int64) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: mode, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	err = errors.Join(head(EntryManifest, mb, 0o644), head(EntrySignature, sig, 0o644))
	if err != nil {
		enc.Close()
		return err
	}
	buf := make([]byte, 1<<20)
	var pw io.Writer = tw
	if progress != nil {
		var total int64
		for _, f := range m.Files {
			total += f.Size
		}
		pw = io.MultiWriter(tw, &meter{total: total, report: progress})
	}
	for _, f := range m.Files {
		if err := writePayload(ctx, tw, pw, f, payload[f.Path], buf); err != nil {
			enc.Close()
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		enc.Close()
		return fmt.Errorf("write archive: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return nil
}

// writePayload writes one payload entry: its header to tw, its content through w (tw itself, or
// a writer that counts for progress).
func writePayload(ctx context.Context, tw *tar.Writer, w io.Writer, f manifest.File, src string, buf []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	mode := int64(f.Mode & 0o777)
	if mode == 0 {
		mode = 0o755
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     PayloadDir + f.Path,
		Size:     f.Size,
		Mode:     mode,
		ModTime:  f.Date.UTC(),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(in, f.Size), buf)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.SHA256 {
		return fmt.Errorf("%s changed while it was packed", src)
	}
	return nil
}
