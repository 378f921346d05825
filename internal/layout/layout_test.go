package layout

import "testing"

func TestFromEnv(t *testing.T) {
	tests := []struct{ flag, env, want string }{
		{"/srv/relay", "/env/root", "/srv/relay"},
		{"", "/env/root", "/env/root"},
		{"", "", DefaultRoot},
	}
	for _, tc := range tests {
		t.Setenv(EnvRoot, tc.env)
		if got := FromEnv(tc.flag); string(got) != tc.want {
			t.Errorf("FromEnv(%q) with %s=%q = %q, want %q", tc.flag, EnvRoot, tc.env, got, tc.want)
		}
	}
	if got := Root("/r").ControlSocket(); got != "/r/run/relayd.sock" {
		t.Errorf("ControlSocket = %q", got)
	}
	if got := Root("/r").Bin("msgtrack"); got != "/r/bin/msgtrack" {
		t.Errorf("Bin = %q", got)
	}
}
