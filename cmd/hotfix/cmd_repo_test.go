package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestRepoScripts runs the repository transcripts, with a "serve DIR" command that serves DIR
// over HTTP on loopback and sets $URL, as any static web server would.
func TestRepoScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/repo",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("STAMPED", stampedBin)
			env.Setenv("RELAYFIX_ROOT", filepath.Join(env.WorkDir, "root"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: serve DIR")
				}
				srv := httptest.NewServer(http.FileServer(http.Dir(ts.MkAbs(args[0]))))
				ts.Defer(srv.Close)
				ts.Setenv("URL", srv.URL)
			},
		},
	})
}
