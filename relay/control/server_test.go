package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeHandler struct {
	flushed  atomic.Int32
	shutdown atomic.Int32
	comps    []Component
}

func (h *fakeHandler) Status() Status {
	return Status{Version: "6.5.7638.1", QueueDepth: 7, Counters: map[string]uint64{"received": 3}}
}
func (h *fakeHandler) Queue(limit int) []QueueEntry {
	all := []QueueEntry{{QueueID: "A"}, {QueueID: "B"}, {QueueID: "C"}}
	if limit > 0 && limit < len(all) {
		return all[:limit]
	}
	return all
}
func (h *fakeHandler) Flush() int { h.flushed.Add(1); return 2 }
func (h *fakeHandler) Component(name string) (Component, bool) {
	for _, c := range h.comps {
		if c.Name() == name {
			return c, true
		}
	}
	return nil, false
}
func (h *fakeHandler) Shutdown() { h.shutdown.Add(1) }

type fakeComponent struct{ enabled atomic.Bool }

func (c *fakeComponent) Name() string { return "tracking" }
func (c *fakeComponent) Status() ComponentStatus {
	return ComponentStatus{Name: "tracking", Enabled: c.enabled.Load(), Health: HealthHealthy}
}
func (c *fakeComponent) Restart(ctx context.Context) (ComponentStatus, error) {
	return ComponentStatus{}, errors.New("binary missing")
}
func (c *fakeComponent) SetEnabled(ctx context.Context, on bool) (ComponentStatus, error) {
	c.enabled.Store(on)
	return c.Status(), nil
}

func TestServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "ctl") // short path: unix socket names are limited in length
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run", "relayd.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v, want 0700", di.Mode().Perm())
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("a second Listen on a live socket succeeded")
	}
	comp := &fakeComponent{}
	h := &fakeHandler{comps: []Component{comp}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, h) }()

	c := Client{Path: path}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	st, err := c.Status(rctx)
	if err != nil || st.QueueDepth != 7 || st.Counters["received"] != 3 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	resp, err := c.Do(rctx, Request{Op: OpQueue, Limit: 2})
	if err != nil || len(resp.Queue) != 2 {
		t.Fatalf("queue limit 2 = %+v, %v", resp, err)
	}
	if _, err := c.Do(rctx, Request{Op: OpFlush}); err != nil || h.flushed.Load() != 1 {
		t.Fatalf("flush: %v, flushed %d", err, h.flushed.Load())
	}
	if _, err := c.RestartComponent(rctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such component") {
		t.Fatalf("restart of an unknown component: %v", err)
	}
	if _, err := c.RestartComponent(rctx, "tracking"); err == nil || !strings.Contains(err.Error(), "binary missing") {
		t.Fatalf("failed restart: %v", err)
	}
	off := false
	resp, err = c.Do(rctx, Request{Op: OpSetComponent, Name: "tracking", Enabled: &off})
	if err != nil || resp.Component == nil || resp.Component.Enabled {
		t.Fatalf("set-component off: %+v, %v", resp, err)
	}
	if _, err := c.Do(rctx, Request{Op: "bogus"}); err == nil {
		t.Fatal("unknown op accepted")
	}
	if _, err := c.Do(rctx, Request{Op: OpShutdown}); err != nil || h.shutdown.Load() != 1 {
		t.Fatalf("shutdown: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := c.Status(rctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status after stop: %v, want ErrNotRunning", err)
	}
}
