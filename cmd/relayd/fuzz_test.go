package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

var queuedAs = regexp.MustCompile(`(?m)^250 2\.0\.0 OK queued as (\S+)\r?$`)

// lastChunk finds a BDAT ... LAST command line and its declared size.
var lastChunk = regexp.MustCompile(`(?im)^BDAT +0*([0-9]{1,9}) +LAST\r\n`)

// cutShort reports whether script ends inside the chunk of its last BDAT LAST command (and not
// inside a DATA that the script ends properly): the client did not complete that transaction.
func cutShort(script []byte) bool {
	all := lastChunk.FindAllSubmatchIndex(script, -1)
	if len(all) == 0 {
		return false
	}
	m := all[len(all)-1]
	n := 0
	fmt.Sscan(string(script[m[2]:m[3]]), &n)
	rest := script[m[1]:]
	return n > len(rest) && !bytes.Contains(rest, []byte("\r\n.\r\n"))
}

// relayedID finds the queue id relayd wrote into the Received: header of a message it relayed.
var relayedID = regexp.MustCompile(`\(relayd\) with ESMTPS? id (\S+)`)

// FuzzIntake sends arbitrary bytes to a real relayd as one client session that ends with a
// half-close, and checks the property that matters for a relay: the next hop receives exactly
// the transactions the client completed and got 250 for, each once, and nothing else (no
// message carved out of a broken transfer, no bounce). Run it with
//
//	go test -run '^$' -fuzz FuzzIntake -parallel 1 ./cmd/relayd/
func FuzzIntake(f *testing.F) {
	for _, seed := range []string{
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<c@x.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\ny\r\n..z\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 5\r\nhelloBDAT 6 LAST\r\n world",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 300 LAST\r\nSubject: cut\r\n\r\nshort",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: outer\r\n\n.\nMAIL FROM:<i@t.test>\r\nRCPT TO:<i@t.test>\r\nDATA\r\ninjected\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n" + strings.Repeat("q", 3000) + "\r\n.\r\nMAIL FROM:<i@t.test>\r\nRCPT TO:<i@t.test>\r\nDATA\r\nx\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@x.test> SIZE=2000\r\nRCPT TO:<b@y.test>\r\nDATA\r\n" + strings.Repeat("0123456789abcde\r\n", 130) + ".\r\n",
		"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.test>\r\nRSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 0 LAST\r\nDATA\r\nx\r\n.\r\n",
	} {
		f.Add([]byte(seed))
	}
	in := startIntake(f, "--max-size", "2000", "--read-timeout", "5s", "--tracking=false")
	seen := 0 // messages of the sink already checked
	f.Fuzz(func(t *testing.T, script []byte) {
		c, err := net.DialTimeout("tcp", in.p.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		replies := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(c)
			replies <- b
		}()
		c.Write(script)
		c.(*net.TCPConn).CloseWrite()
		got := <-replies
		if !bytes.HasPrefix(got, []byte("220 ")) {
			t.Fatalf("no greeting: %q", got)
		}
		acked := map[string]bool{}
		for _, m := range queuedAs.FindAllSubmatch(got, -1) {
			acked[string(m[1])] = true
		}
		// A transfer the client did not complete is never acknowledged.
		if lines := bytes.Split(bytes.TrimRight(got, "\r\n"), []byte("\r\n")); cutShort(script) && queuedAs.Match(lines[len(lines)-1]) {
			t.Errorf("a BDAT chunk cut short by the half-close was acknowledged: %q", lines[len(lines)-1])
		}
		// Everything acknowledged is delivered once the queue is empty.
		deadline := time.Now().Add(20 * time.Second)
		for status(t, in.root).QueueDepth != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("queue not empty after 20 s; replies %q", got)
			}
			time.Sleep(2 * time.Millisecond)
		}
		msgs := in.sink.Messages()
		delivered := map[string]int{}
		for _, m := range msgs[seen:] {
			id := relayedID.FindSubmatch(m)
			if id == nil {
				t.Fatalf("the next hop received a message relayd did not relay from a client (a bounce?): %q", m)
			}
			delivered[string(id[1])]++
		}
		seen = len(msgs)
		for id := range acked {
			if delivered[id] != 1 {
				t.Errorf("acknowledged %s arrived %d times", id, delivered[id])
			}
		}
		for id, n := range delivered {
			if !acked[id] {
				t.Errorf("%s arrived %d times without a 250 to the client", id, n)
			}
		}
		if t.Failed() {
			t.Logf("script %q\nreplies %q", script, got)
		}
	})
}
