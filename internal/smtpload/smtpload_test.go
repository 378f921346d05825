package smtpload

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestLoadIntoSink(t *testing.T) {
	sink, err := NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// Refuse message 7 permanently: it must be counted as rejected, never as acked.
	sink.SetReply(func(seq int) error {
		if seq == 7 {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no"}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Load(ctx, LoadOptions{Addr: sink.Addr(), N: 50, Concurrency: 4, Size: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 50 || res.Acked != 49 || res.Rejected != 1 {
		t.Fatalf("sent=%d acked=%d rejected=%d, want 50/49/1 (first error %v)", res.Sent, res.Acked, res.Rejected, res.FirstError)
	}
	if _, ok := res.Acks[7]; ok {
		t.Fatal("refused message 7 recorded as acked")
	}
	tally := sink.WaitFor(ctx, res.Acks)
	if tally.Lost != 0 || tally.Duplicates != 0 || tally.Delivered != 49 {
		t.Fatalf("tally %v", tally)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:25", "example.com:25", "192.168.1.1:25"} {
		if _, err := Load(context.Background(), LoadOptions{Addr: addr, N: 1}); err == nil {
			t.Errorf("Load(%s) accepted a non-loopback address", addr)
		}
		if _, err := NewSink(addr); err == nil {
			t.Errorf("NewSink(%s) accepted a non-loopback address", addr)
		}
	}
}
