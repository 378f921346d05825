package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// serveRepository publishes the demo's packages in a signed repository (as a vendor does with
// hotfix repo), serves it on a loopback port with a plain static file server, and adds it as the
// root's source, trusting its first root as an operator would after getting it out of band. The
// returned function stops the server and removes the repository.
func (r *run) serveRepository(ctx context.Context, dist string) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "relayfix-demo-repo-")
	if err != nil {
		return nil, fmt.Errorf("make repository directory: %w", err)
	}
	repo := filepath.Join(dir, "repo")
	pub := filepath.Join(dist, "demo.pub")
	steps := [][]string{
		{"repo", "init", repo},
		{"repo", "add", repo, filepath.Join(dist, "SP2.hfx"), filepath.Join(dist, "KB910618.hfx"), "--pubkey", pub},
	}
	for _, s := range steps {
		if _, err := r.hotfixCmd(ctx, s...); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("serve repository: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(repo, "repository"))), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.say("repository server: %v", err)
		}
		os.RemoveAll(dir)
	}
	url := "http://" + ln.Addr().String()
	if _, err := r.hotfixCmd(ctx, "source", "add", url, "--trust", filepath.Join(repo, "repository", "1.root.json")); err != nil {
		stop()
		return nil, err
	}
	r.say("published SP2 and KB910618 in a signed repository served at %s, and added it as this root's source", url)
	return stop, nil
}

// check runs hotfix check, shows what it says and reports whether it named KB910618 as the fix
// for the crash relayd recorded.
func (r *run) check(ctx context.Context) (bool, error) {
	out, err := r.hotfixCmd(ctx, "check")
	if err != nil {
		return false, err
	}
	r.say("hotfix check: what applies here, and what fixes the crash seen here")
	r.block(out)
	return strings.Contains(out, "KB910618 fixes this — hotfix apply KB910618"), nil
}
