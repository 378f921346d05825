package flagfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		file string // "" for no file
		args []string
		want string // the flags after Apply, as "listen workers allow timeout"
		err  string
	}{
		{name: "no file", want: ":25 4 [127.0.0.0/8] 1m0s"},
		{name: "file sets", file: `{"listen": "127.0.0.1:2525", "workers": 8, "allow": ["10.0.0.0/8", "::1/128"], "timeout": "5s"}`,
			want: "127.0.0.1:2525 8 [10.0.0.0/8,::1/128] 5s"},
		{name: "command line wins", file: `{"workers": 8}`, args: []string{"--workers", "2"}, want: ":25 2 [127.0.0.0/8] 1m0s"},
		{name: "unknown setting", file: `{"wokers": 8}`, err: `"wokers": unknown setting`},
		{name: "excepted setting", file: `{"root": "/elsewhere"}`, err: `"root": unknown setting`},
		{name: "bad value", file: `{"workers": "many"}`, err: `"workers": want a whole number`},
		{name: "unsupported value", file: `{"workers": {"n": 1}}`, err: `"workers": want a whole number`},
		{name: "not json", file: `workers=8`, err: "relayd.json:1:1: not valid JSON: invalid character"},
		{name: "syntax error names line and column", file: "{\n  \"workers\": 8,\n  \"listen\": \"x\"\n  \"allow\": []\n}", err: "relayd.json:4:3: not valid JSON"},
		{name: "no go internals", file: `{"workers": 1.5}`, err: `relayd.json:1:2: "workers": want a whole number`},
		{name: "number for an address", file: `{"listen": 4103}`, err: `"listen": want a string`},
		{name: "string for a number", file: `{"workers": "8"}`, err: `"workers": want a whole number`},
		{name: "bad duration", file: `{"timeout": "soon"}`, err: `"timeout": want a duration`},
		{name: "not an object", file: `[1]`, err: "want a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "relayd.json")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fs := pflag.NewFlagSet("relayd", pflag.ContinueOnError)
			listen := fs.String("listen", ":25", "")
			fs.Int("workers", 4, "")
			fs.StringSlice("allow", []string{"127.0.0.0/8"}, "")
			timeout := fs.Duration("timeout", time.Minute, "")
			fs.String("root", "", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := Apply(path, fs, "root")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Apply = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.file != "" && tt.args == nil {
				if n := Name(fs, "workers"); n != path+` "workers"` {
					t.Errorf("Name = %q, want the file's key", n)
				}
			}
			if n := Name(fs, "root"); n != "--root" {
				t.Errorf("Name(root) = %q, want --root", n)
			}
			got := strings.Join([]string{*listen, fs.Lookup("workers").Value.String(), fs.Lookup("allow").Value.String(), timeout.String()}, " ")
			if got != tt.want {
				t.Errorf("flags %q, want %q", got, tt.want)
			}
		})
	}
}
