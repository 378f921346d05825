// Package layout names the files and folders of an install root, so that relayd, msgtrack and
// hotfix agree on where everything lives without passing paths around.
//
//	ROOT/
//	  product.json          product name, version, service-pack level
//	  relayd.json           relayd configuration (flags override it)
//	  bin/relayd, bin/msgtrack
//	  spool/                queued messages
//	  log/tracking/         message tracking logs, one file a day
//	  run/relayd.sock       control socket (owner-only)
//	  hotfix/               installed-files database, history, journal, backups, staging, trusted keys
package layout

import (
	"os"
	"path/filepath"
)

// EnvRoot is the environment variable that names the install root when --root is not given.
const EnvRoot = "RELAYFIX_ROOT"

// DefaultRoot is the install root used when neither --root nor RELAYFIX_ROOT is set.
const DefaultRoot = "/var/lib/relayfix"

// Root is an install root directory.
type Root string

// FromEnv returns the root named by flag, else by RELAYFIX_ROOT, else DefaultRoot.
func FromEnv(flag string) Root {
	if flag != "" {
		return Root(flag)
	}
	if v := os.Getenv(EnvRoot); v != "" {
		return Root(v)
	}
	return Root(DefaultRoot)
}

// Join returns a path below the root; rel is slash-separated, as in a manifest's file table.
func (r Root) Join(rel string) string { return filepath.Join(string(r), filepath.FromSlash(rel)) }

func (r Root) Product() string        { return r.Join("product.json") }
func (r Root) Config() string         { return r.Join("relayd.json") }
func (r Root) Bin(name string) string { return r.Join("bin/" + name) }
func (r Root) Spool() string          { return r.Join("spool") }
func (r Root) TrackingLog() string    { return r.Join("log/tracking") }
func (r Root) Run() string            { return r.Join("run") }
func (r Root) ControlSocket() string  { return r.Join("run/relayd.sock") }
func (r Root) Hotfix() string         { return r.Join("hotfix") }
func (r Root) InstalledDB() string    { return r.Join("hotfix/installed.json") }
func (r Root) History() string        { return r.Join("hotfix/history.jsonl") }
func (r Root) Journal() string        { return r.Join("hotfix/journal.json") }
func (r Root) Lock() string           { return r.Join("hotfix/lock") }
func (r Root) Backups() string        { return r.Join("hotfix/backup") }
func (r Root) Staging() string        { return r.Join("hotfix/staging") }
func (r Root) Sources() string        { return r.Join("hotfix/sources") }
func (r Root) Trusted() string        { return r.Join("hotfix/trusted") }
