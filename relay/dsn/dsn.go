// Package dsn builds the delivery status notifications (RFC 3464) that relayd sends back to a
// sender when it gives up on recipients: a multipart/report with a human-readable part, the
// machine-readable message/delivery-status part, and the original message's header.
package dsn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// Recipient is one recipient the relay gave up on.
type Recipient struct {
	Address   string
	Status    string // enhanced status code, e.g. 5.1.1
	Reply     string // the next hop's reply, or why delivery failed
	RemoteMTA string // host:port of the next hop, if one answered
	Expired   bool   // the message outlived its queue lifetime
}

// Report describes a notification.
type Report struct {
	ReportingMTA string // this relay's host name
	QueueID      string // the original message's queue id
	Sender       string // the original sender: the notification's recipient
	Arrival      time.Time
	Date         time.Time
	MessageID    string // Message-ID of the notification, with angle brackets
	Recipients   []Recipient
	Original     io.Reader // the original message; only its header is returned
}

// maxHeader bounds how much of the original header is copied into the notification.
const maxHeader = 64 << 10

// Build returns the notification as a complete message (header and body, CRLF line ends).
func Build(r Report) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)

	text := textproto.MIMEHeader{}
	text.Set("Content-Type", "text/plain; charset=us-ascii")
	tw, err := mw.CreatePart(text)
	if err != nil {
		return nil, fmt.Errorf("build dsn: %w", err)
	}
	fmt.Fprintf(tw, "This is the mail relay at %s.\r\n\r\n", r.ReportingMTA)
	fmt.Fprintf(tw, "Your message (queue id %s) could not be delivered to the following\r\nrecipients:\r\n\r\n", r.QueueID)
	for _, rc := range r.Recipients {
		why := rc.Reply
		if rc.Expired {
			why = "gave up after the message's queue lifetime; last error: " + why
		}
		fmt.Fprintf(tw, "<%s>: %s\r\n", printable(rc.Address), oneLine(why))
	}

	status := textproto.MIMEHeader{}
	status.Set("Content-Type", "message/delivery-status")
	sw, err := mw.CreatePart(status)
	if err != nil {
		return nil, fmt.Errorf("build dsn: %w", err)
	}
	fmt.Fprintf(sw, "Reporting-MTA: dns; %s\r\n", r.ReportingMTA)
	fmt.Fprintf(sw, "X-Relayfix-Queue-ID: %s\r\n", r.QueueID)
	if !r.Arrival.IsZero() {
		fmt.Fprintf(sw, "Arrival-Date: %s\r\n", r.Arrival.UTC().Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		fmt.Fprintf(sw, "\r\nFinal-Recipient: rfc822; %s\r\n", printable(rc.Address))
		fmt.Fprintf(sw, "Action: failed\r\n")
		fmt.Fprintf(sw, "Status: %s\r\n", permanent(rc.Status))
		if rc.RemoteMTA != "" {
			fmt.Fprintf(sw, "Remote-MTA: dns; %s\r\n", rc.RemoteMTA)
		}
		if rc.Reply != "" {
			fmt.Fprintf(sw, "Diagnostic-Code: smtp; %s\r\n", oneLine(rc.Reply))
		}
	}

	orig := textproto.MIMEHeader{}
	orig.Set("Content-Type", "text/rfc822-headers")
	ow, err := mw.CreatePart(orig)
	if err != nil {
		return nil, fmt.Errorf("build dsn: %w", err)
	}
	if r.Original != nil {
		if err := copyHeader(ow, r.Original); err != nil {
			return nil, fmt.Errorf("build dsn: original header: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("build dsn: %w", err)
	}

	var out bytes.Buffer
	fmt.Fprintf(&out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", r.ReportingMTA)
	fmt.Fprintf(&out, "To: <%s>\r\n", printable(r.Sender))
	fmt.Fprintf(&out, "Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&out, "Date: %s\r\n", r.Date.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&out, "Message-ID: %s\r\n", r.MessageID)
	fmt.Fprintf(&out, "Auto-Submitted: auto-replied\r\n")
	fmt.Fprintf(&out, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=%q\r\n\r\n", mw.Boundary())
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// permanent turns a 4.x.x status of an expired message into the 5.x.x a failed action needs.
func permanent(status string) string {
	if strings.HasPrefix(status, "4.") {
		return "5." + status[2:]
	}
	if status == "" {
		return "5.0.0"
	}
	return status
}

// printable escapes control characters in an address, so that an address accepted before
// they were refused cannot split a header line of the notification.
func printable(addr string) string {
	var b strings.Builder
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteByte(addr[i])
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// copyHeader copies the header section of a message (up to the first empty line), with CRLF
// line ends, at most maxHeader bytes.
func copyHeader(w io.Writer, r io.Reader) error {
	br := bufio.NewReader(io.LimitReader(r, maxHeader))
	for {
		line, err := br.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" && (err == nil || line != "") {
			return nil
		}
		if trimmed != "" {
			if _, werr := io.WriteString(w, trimmed+"\r\n"); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
