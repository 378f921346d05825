package courier_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"relayfix/internal/smtpload"
	"relayfix/relay/courier"
)

func body(seq int) *io.SectionReader {
	b := smtpload.Message(seq, 300)
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

// A delivery whose context ends is cut off at once, whatever the next hop's timeouts, and reported
// as a temporary failure; the courier then delivers the next message over a new connection.
func TestDeliveryCutOffByItsContext(t *testing.T) {
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	defer let()
	sink.SetReply(func(seq int) error {
		if seq == 1 {
			stalled <- struct{}{}
			<-release // the end of DATA of message 1 is never answered while the test runs
		}
		return nil
	})
	k := &courier.Courier{NextHop: sink.Addr(), Helo: "relay.test", Timeout: time.Minute}
	defer k.Close()

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []courier.Result, 1)
	go func() { got <- k.Deliver(ctx, "s@example.test", []string{"a@x.test", "b@x.test"}, body(1)) }()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("message 1 did not reach the next hop")
	}
	cancel()
	var res []courier.Result
	select {
	case res = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery went on after its context ended")
	}
	for i, r := range res {
		if r.OK || !r.Temporary || r.Partner != sink.Addr() || r.Reply == "" {
			t.Errorf("recipient %d: %+v, want a temporary failure at %s", i, r, sink.Addr())
		}
	}

	let() // the sink answers one session at a time: let the stalled one go
	res = k.Deliver(context.Background(), "s@example.test", []string{"a@x.test"}, body(2))
	if len(res) != 1 || !res[0].OK || !strings.HasPrefix(res[0].Reply, "250") || res[0].Partner != sink.Addr() {
		t.Fatalf("next delivery: %+v", res)
	}
	if sink.Received(2) != 1 {
		t.Fatalf("the next hop received message 2 %d times", sink.Received(2))
	}
}
