package smtpd

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"relayfix/relay/spool"
)

func TestHeaderFields(t *testing.T) {
	tests := []struct {
		msg, id, subject string
	}{
		{"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody", "<1@x>", "hi"},
		{"message-id:<2@x>\r\nSUBJECT:  spaced  \r\n\r\n", "<2@x>", "spaced"},
		{"From: a\r\n\r\nSubject: in the body\r\n", "", ""},        // the body is not the header
		{"Subject: first\r\nSubject: second\r\n\r\n", "", "first"}, // the first one counts
		{"no header at all", "", ""},
	}
	for _, tt := range tests {
		id, subj := headerFields([]byte(tt.msg))
		if id != tt.id || subj != tt.subject {
			t.Errorf("headerFields(%q) = %q, %q; want %q, %q", tt.msg, id, subj, tt.id, tt.subject)
		}
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize("evil (host)\r\nX-Injected: 1"); strings.ContainsAny(got, " ()\r\n") {
		t.Fatalf("sanitize left header-breaking characters: %q", got)
	}
	if got := sanitize("mail.example.test"); got != "mail.example.test" {
		t.Fatalf("sanitize changed a plain name: %q", got)
	}
}

type nopQueue struct{}

func (nopQueue) Accept(context.Context, *spool.Envelope, []byte, []byte) error { return nil }
func (nopQueue) NewID() string                                                 { return "ID" }

func TestMaxConnsTurnsTheRestAway(t *testing.T) {
	s := New(Config{Hostname: "relay.test", MaxConns: 5, Queue: nopQueue{}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	greet := func() (net.Conn, string) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, line
	}
	var open []net.Conn
	for i := range 5 {
		c, line := greet()
		if !strings.HasPrefix(line, "220") {
			t.Fatalf("connection %d: %q", i, line)
		}
		open = append(open, c)
	}
	c, line := greet()
	c.Close()
	if !strings.HasPrefix(line, "421") {
		t.Fatalf("connection over the limit: %q, want 421", line)
	}
	open[0].Close()
	// The freed slot is usable again (the server notices the close asynchronously).
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, line := greet()
		c.Close()
		if strings.HasPrefix(line, "220") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range open[1:] {
		c.Close()
	}
	if n := s.Counters()[CountOverload]; n < 1 {
		t.Fatalf("overload counter %d", n)
	}
}
