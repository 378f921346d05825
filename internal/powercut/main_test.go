package powercut

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"relayfix/internal/lazyfs"
	"relayfix/internal/relaytest"
	"relayfix/manifest"
	"relayfix/packages/archive"
)

var (
	cuts = flag.Int("cuts", 30, "power cuts in all, shared among the three workloads (CI runs the default)")
	seed = flag.Uint64("seed", 0, "seed of the random cut moments (0: from the clock; a failing run prints its seed)")
)

// env is what TestMain builds once: the binaries and the two packages of the KB 910618 story.
type env struct {
	bins    relaytest.Binaries
	pub     string // public key file that signed the packages
	sp2, kb string // SP2.hfx, KB910618.hfx
}

var e env // set once by TestMain, read-only afterwards

func TestMain(m *testing.M) {
	flag.Parse()
	if lazyfs.Available() != nil {
		os.Exit(m.Run()) // every test skips, or fails under CI, with the reason
	}
	dir, err := os.MkdirTemp("", "powercut-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "powercut setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// setup builds the binaries and packs SP2 (relayd and the service pack tracking build) and
// KB910618 (the fixed tracking build) from packaging/, signed with a fresh key.
func setup(dir string) error {
	ctx := context.Background()
	bins, err := relaytest.Build(ctx, dir)
	if err != nil {
		return err
	}
	e.bins = bins
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pt, _ := pub.MarshalText()
	e.pub = filepath.Join(dir, "key.pub")
	if err := os.WriteFile(e.pub, append(pt, '\n'), 0o644); err != nil {
		return err
	}
	mod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	packaging := filepath.Join(filepath.Dir(strings.TrimSpace(string(mod))), "packaging")
	for _, p := range []struct {
		out, tmpl string
		payload   map[string]string
		date      time.Time
	}{
		{filepath.Join(dir, "SP2.hfx"), "SP2.json", map[string]string{"bin/relayd": bins.Relayd, "bin/msgtrack": bins.TrackPrefix},
			time.Date(2005, 10, 17, 12, 0, 0, 0, time.UTC)},
		{filepath.Join(dir, "KB910618.hfx"), "KB910618.json", map[string]string{"bin/msgtrack": bins.TrackFixed},
			time.Date(2006, 2, 14, 3, 36, 0, 0, time.UTC)},
	} {
		b, err := os.ReadFile(filepath.Join(packaging, p.tmpl))
		if err != nil {
			return err
		}
		tmpl, err := manifest.ParseTemplate(b)
		if err != nil {
			return fmt.Errorf("template %s: %w", p.tmpl, err)
		}
		var buf bytes.Buffer
		if _, err := archive.Pack(ctx, &buf, tmpl, p.payload, priv, archive.PackOptions{Date: p.date}); err != nil {
			return fmt.Errorf("pack %s: %w", tmpl.ID, err)
		}
		if err := os.WriteFile(p.out, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	e.sp2, e.kb = filepath.Join(dir, "SP2.hfx"), filepath.Join(dir, "KB910618.hfx")
	return nil
}
