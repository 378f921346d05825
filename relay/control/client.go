package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ErrNotRunning is returned when no relay listens on the control socket.
var ErrNotRunning = errors.New("relayd is not running")

// ErrPermission is returned when the control socket exists but this user may not open it.
var ErrPermission = errors.New("permission denied")

// socketOwner names the user that owns the socket at path (or, when it cannot be read, the
// folder that holds it).
func socketOwner(path string) string {
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			break
		}
		uid := strconv.FormatUint(uint64(st.Uid), 10)
		if u, err := user.LookupId(uid); err == nil {
			return u.Username
		}
		return "uid " + uid
	}
	return "another user"
}

// Client talks to one relay's control socket.
type Client struct {
	Path string // socket path, ROOT/run/relayd.sock
}

// Do sends req and returns the relay's response. A response carrying an error is returned as an
// error too.
func (c Client) Do(ctx context.Context, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if errors.Is(err, fs.ErrPermission) {
		// The relay runs, but as someone else: saying it is not running would send the
		// operator looking in the wrong place.
		owner := socketOwner(c.Path)
		as := owner
		if owner != "root" {
			as += " or as root"
		}
		return nil, fmt.Errorf("control socket %s: %w: it belongs to %s; run this as %s", c.Path, ErrPermission, owner, as)
	}
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (%v)", c.Path, ErrNotRunning, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("control %s: send: %w", req.Op, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("control %s: %w", req.Op, ctx.Err())
		}
		return nil, fmt.Errorf("control %s: read reply: %w", req.Op, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control %s: malformed reply: %w", req.Op, err)
	}
	if resp.Error != "" {
		return &resp, fmt.Errorf("control %s: %s", req.Op, resp.Error)
	}
	return &resp, nil
}

// Status returns the relay's status.
func (c Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.Do(ctx, Request{Op: OpStatus})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("control status: empty reply")
	}
	return resp.Status, nil
}

// RestartComponent asks the relay to start the installed build of the named component, switch
// over to it and retire the old process. It returns once the new build is serving, or failed.
func (c Client) RestartComponent(ctx context.Context, name string) (*ComponentStatus, error) {
	resp, err := c.Do(ctx, Request{Op: OpRestartComponent, Name: name})
	if err != nil {
		return nil, err
	}
	return resp.Component, nil
}

// Component returns the status of the named component.
func (s *Status) Component(name string) (ComponentStatus, bool) {
	for _, c := range s.Components {
		if c.Name == name {
			return c, true
		}
	}
	return ComponentStatus{}, false
}
