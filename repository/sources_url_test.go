package repository

import (
	"strings"
	"testing"

	"relayfix/internal/layout"
)

// A source URL that no client could fetch from is refused before anything is written.
func TestSourceURLIsChecked(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1:",
		"http://127.0.0.1:0/",
		"http://127.0.0.1:70000/",
		"http://:8080/",
		"ftp://127.0.0.1/",
		"http://user:pw@127.0.0.1/",
		"http://127.0.0.1/?x=1",
		"127.0.0.1:8080",
	} {
		root := layout.Root(t.TempDir())
		_, err := (Sources{root}).Add(u, []byte("{}"))
		if err == nil || !strings.Contains(err.Error(), "add source") || strings.Contains(err.Error(), "trusted root") {
			t.Errorf("Add(%q) = %v, want the URL refused", u, err)
		}
	}
}
