package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Handler is what the control server asks of the relay.
type Handler interface {
	Status() Status
	Queue(limit int) []QueueEntry
	// Flush makes every deferred message due now and returns how many there were.
	Flush() int
	// Component returns the named component.
	Component(name string) (Component, bool)
	// Shutdown starts a graceful shutdown; it does not wait for it.
	Shutdown()
}

// ErrNoComponent is the error for a component name the relay does not have.
var ErrNoComponent = errors.New("no such component")

// Listen creates the control socket at path, owner-only: its directory 0700, the socket 0600.
// A stale socket left by a crashed relay is replaced; a live one is an error.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another relayd is running on this root", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx is done, then closes ln and waits for the requests in
// progress.
func Serve(ctx context.Context, ln net.Listener, h Handler) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, c, h)
		}()
	}
}

func serveConn(ctx context.Context, c net.Conn, h Handler) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return
	}
	var req Request
	var resp Response
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = "malformed request: " + err.Error()
	} else {
		resp = handle(ctx, req, h)
	}
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	json.NewEncoder(c).Encode(resp)
}

func handle(ctx context.Context, req Request, h Handler) Response {
	switch req.Op {
	case OpStatus:
		st := h.Status()
		return Response{Status: &st}
	case OpQueue:
		q := h.Queue(req.Limit)
		if q == nil {
			q = []QueueEntry{}
		}
		return Response{Queue: q}
	case OpFlush:
		h.Flush()
		st := h.Status()
		return Response{Status: &st}
	case OpRestartComponent, OpSetComponent:
		comp, ok := h.Component(req.Name)
		if !ok {
			return Response{Error: fmt.Sprintf("%s: %v", req.Name, ErrNoComponent)}
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var cs ComponentStatus
		var err error
		if req.Op == OpRestartComponent {
			cs, err = comp.Restart(ctx)
		} else {
			if req.Enabled == nil {
				return Response{Error: "set-component needs enabled"}
			}
			cs, err = comp.SetEnabled(ctx, *req.Enabled)
		}
		if err != nil {
			return Response{Error: err.Error(), Component: &cs}
		}
		return Response{Component: &cs}
	case OpShutdown:
		h.Shutdown()
		return Response{}
	case OpUpgrade:
		u, ok := h.(Upgrader)
		if !ok {
			return Response{Error: "this relay cannot upgrade itself"}
		}
		// Once the new process took over, this one stops serving the control socket, which
		// ends ctx: the answer must still come back.
		if err := u.Upgrade(context.WithoutCancel(ctx), req.Version, time.Duration(req.TimeoutMS)*time.Millisecond); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{}
	default:
		return Response{Error: fmt.Sprintf("unknown operation %q", req.Op)}
	}
}
