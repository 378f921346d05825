package relay

import "testing"

func TestMetricsAddress(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{":9465", "127.0.0.1:9465", false}, // a bare port stays on loopback
		{"127.0.0.1:9465", "127.0.0.1:9465", false},
		{"[::1]:9465", "[::1]:9465", false},
		{"0.0.0.0:9465", "0.0.0.0:9465", false}, // everywhere only when said so
		{"9465", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := MetricsAddress(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("MetricsAddress(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}
