package courier

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"relayfix/internal/smtpload"
)

// An address that cannot be sent in an SMTP command fails permanently, so the message is
// bounced at once instead of being retried until its lifetime ends; the good recipients of the
// same message are still delivered.
func TestBadAddressFailsPermanently(t *testing.T) {
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	k := &Courier{NextHop: sink.Addr(), Helo: "relay.test", Timeout: 10 * time.Second}
	defer k.Close()
	msg := string(smtpload.Message(1, 100))
	tests := []struct {
		name  string
		from  string
		rcpts []string
		want  []Result // Reply compared by prefix
	}{
		{"CR in sender", "a\rb@x.test", []string{"c@y.test"}, []Result{{Reply: "553 5.1.3"}}},
		{"NUL in recipient", "a@x.test", []string{"c\x00d@y.test", "e@y.test"}, []Result{{Reply: "553 5.1.3"}, {OK: true, Reply: "250"}}},
		{"LF in recipient", "a@x.test", []string{"c\nd@y.test"}, []Result{{Reply: "553 5.1.3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := k.Deliver(context.Background(), tt.from, tt.rcpts, io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d results, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].OK != w.OK || got[i].Temporary || !strings.HasPrefix(got[i].Reply, w.Reply) || strings.ContainsAny(got[i].Reply, "\r\n\x00") {
					t.Errorf("recipient %d: %+v, want %+v (permanent, no control characters)", i, got[i], w)
				}
			}
		})
	}
}

// Lines longer than the 998 characters SMTP allows are broken with CRLF SPACE on the way out.
func TestLineWrapper(t *testing.T) {
	long := strings.Repeat("a", 2500)
	tests := []struct{ in, want string }{
		{"short\r\n", "short\r\n"},
		{strings.Repeat("b", 998) + "\r\n", strings.Repeat("b", 998) + "\r\n"},
		{long + "\r\nx\r\n", long[:998] + "\r\n " + long[998:1995] + "\r\n " + long[1995:] + "\r\nx\r\n"},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 7, 4096} { // however the body is split into writes
			var b strings.Builder
			lw := &lineWrapper{w: &b}
			for i := 0; i < len(tt.in); i += step {
				if _, err := lw.Write([]byte(tt.in[i:min(i+step, len(tt.in))])); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != tt.want {
				t.Errorf("input of %d bytes in writes of %d: got %q…, want %q…", len(tt.in), step, trunc(b.String()), trunc(tt.want))
			}
		}
	}
}

func trunc(s string) string { return s[:min(len(s), 40)] + "…" + s[max(0, len(s)-20):] }
