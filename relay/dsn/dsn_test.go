package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestBuildIsAnRFC3464Report(t *testing.T) {
	orig := "Received: from x\r\nSubject: hello\r\nMessage-ID: <1@example.test>\r\n\r\nsecret body\r\n"
	msg, err := Build(Report{
		ReportingMTA: "relay.example.test",
		QueueID:      "Q1",
		Sender:       "alice@example.test",
		Arrival:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Date:         time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC),
		MessageID:    "<Q2@relay.example.test>",
		Recipients: []Recipient{
			{Address: "bob@example.test", Status: "5.1.1", Reply: "550 5.1.1 no such user", RemoteMTA: "127.0.0.1:25"},
			{Address: "carol@example.test", Status: "4.4.7", Reply: "451 try later", Expired: true},
		},
		Original: strings.NewReader(orig),
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a message: %v", err)
	}
	if got := m.Header.Get("To"); got != "<alice@example.test>" {
		t.Errorf("To = %q", got)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var status, headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		switch {
		case strings.HasPrefix(ct, "message/delivery-status"):
			status = string(b)
		case strings.HasPrefix(ct, "text/rfc822-headers"):
			headers = string(b)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("parts = %v", types)
	}
	for _, want := range []string{
		"Reporting-MTA: dns; relay.example.test",
		"Final-Recipient: rfc822; bob@example.test",
		"Status: 5.1.1",
		"Diagnostic-Code: smtp; 550 5.1.1 no such user",
		"Final-Recipient: rfc822; carol@example.test",
		"Status: 5.4.7", // an expired temporary failure is reported as permanent
		"Action: failed",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(headers, "Subject: hello") || strings.Contains(headers, "secret body") {
		t.Errorf("rfc822-headers part should hold the header only:\n%s", headers)
	}
}
