package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relayfix/internal/layout"
	"relayfix/internal/smtpload"
)

var spaceMessages = flag.Int("space-messages", 20000, "messages of 4 KiB sent through relayd on a 20 MB tmpfs by TestSpaceOnSmallDisk")

// mountTmpfs mounts a tmpfs of size bytes on a fresh short directory and unmounts it when the
// test ends (after relayd, which is stopped by a cleanup registered later).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs: run as root (CI does), e.g. sudo go test -run TestSpaceOnSmallDisk ./cmd/relayd/")
	}
	dir, err := os.MkdirTemp("", "rfs")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		os.Remove(dir)
		t.Skipf("cannot mount a tmpfs here (%v): run as root with mount rights, as CI does", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	if f == nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// sendOne sends one message on an open session and returns the final reply.
func sendOne(t *testing.T, c net.Conn, r *bufio.Reader, seq int) string {
	t.Helper()
	if got := command(t, c, r, "MAIL FROM:<a@x.test>"); !strings.HasPrefix(got, "250") {
		return got
	}
	if got := command(t, c, r, "RCPT TO:<b@y.test>"); !strings.HasPrefix(got, "250") {
		return got
	}
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
		return got
	}
	c.Write(smtpload.Message(seq, 4096))
	return command(t, c, r, ".")
}

// Case 6: on a 20 MB disk, mail far beyond the disk's size passes with the next hop up, never
// refused for want of space; a full disk is survived without a restart; a shutdown on a full
// disk exits cleanly.
func TestSpaceOnSmallDisk(t *testing.T) {
	dir := mountTmpfs(t, 20<<20)
	root := layout.Root(dir)
	sink := newSink(t, "127.0.0.1:0")
	p := startRelay(t, root, sink.Addr(), "--tracking=false")

	n := *spaceMessages
	res := load(t, context.Background(), smtpload.LoadOptions{Addr: p.Addr, N: n, Concurrency: 8, Size: 4096, Duration: 3 * time.Minute})
	t.Logf("%d messages of 4 KiB (%d MB) in %v: acked %d, refused %d, connection errors %d",
		n, n*4096>>20, res.Elapsed.Round(time.Millisecond), res.Acked, res.Rejected, res.ConnErrors)
	if res.Acked != n || res.Rejected != 0 || res.ConnErrors != 0 {
		t.Fatalf("acked %d of %d, refused %d (first error %v)", res.Acked, n, res.Rejected, res.FirstError)
	}
	tally := waitDelivered(t, sink, res.Acks, 60*time.Second)
	if tally.Lost != 0 || tally.Delivered != n {
		t.Fatalf("delivery: %v", tally)
	}

	// Fill the disk: the relay refuses for want of space (temporarily), then accepts again as
	// soon as the space is back.
	c, r := dialRaw(t, p.Addr)
	defer c.Close()
	command(t, c, r, "EHLO space.test")
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	seq := n
	got := sendOne(t, c, r, seq)
	if !strings.HasPrefix(got, "451") {
		t.Fatalf("on a full disk: %q, want 451", got)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for {
		seq++
		got := sendOne(t, c, r, seq)
		if strings.HasPrefix(got, "250") {
			break
		}
		if !strings.HasPrefix(got, "451") {
			t.Fatalf("after freeing the disk: %q", got)
		}
		if time.Since(freed) > time.Second {
			t.Fatalf("still %q %v after the disk was freed", got, time.Since(freed))
		}
	}
	t.Logf("accepting again %v after the disk was freed", time.Since(freed).Round(time.Millisecond))

	// A shutdown on a full disk exits cleanly.
	fill(t, filler)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("SIGTERM on a full disk: exit %d\n%s", code, p.Log())
	}
}
