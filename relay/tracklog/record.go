// Package tracklog is the message tracking log: the files msgtrack writes and `relayd track`
// searches. It is modelled on Exchange Server's message tracking logs so that an operator who
// knows those can read ours.
//
// # Files
//
// One file a day, ROOT/log/tracking/YYYYMMDD.log, named for the UTC date on which its lines were
// written; a writer switches to the next file at UTC midnight. Files are only ever appended to,
// one whole batch per write(2), and the writer fsyncs after each batch before it acknowledges the
// batch, so a record that was acknowledged survives a crash of the plugin or the host.
//
// # Format
//
// A file starts with a W3C extended log header, then one record per line, fields separated by a
// single tab, lines ended by a newline:
//
//	#Software: relayfix msgtrack 6.5.7651.45
//	#Version: 1
//	#Date: 2026-11-29 18:40:00 GMT
//	#Fields: date	time	client-ip	client-hostname	partner-name	server-hostname	server-ip	recipient-address	event-id	msgid	priority	recipient-report-status	total-bytes	number-recipients	origination-time	encryption	service-version	linked-msgid	message-subject	sender-address	queue-id	seq
//
// date is YYYY-MM-DD and time hh:mm:ss.ffffff GMT, both UTC, of the event (not of the write);
// origination-time is the time the relay received the message (RFC 3339, UTC). event-id is the
// Exchange-style number (1019 received, 1020 queued for remote delivery, 1031 delivered, 1032
// deferred, 1033 failed, 1030 non-delivery report, 1034 expired). A message-level event is written
// once per recipient, as Exchange does, with number-recipients giving the message's total.
// recipient-report-status is the next hop's reply or the reason of a failure. queue-id is the
// relay's id of the message; seq is the relay's event sequence number.
//
// Field values are escaped so that no value can break a line or shift a column: a backslash is
// written as \\, a tab as \t, a newline as \n and a carriage return as \r. An empty value is an
// empty field. Lines that begin with # are comments; readers skip them, and any line that does not
// have the full set of fields (for instance the torn tail of a write cut short by a crash).
//
// Delivery of records is at least once: after a plugin crash the host replays every event the
// plugin had not acknowledged, so a record may appear twice. A record is identified by its seq
// and recipient-address, and readers drop the repeats.
package tracklog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"relayfix/internal/tsv"
	"relayfix/relay/track"
)

// Fields names the columns of a tracking log line, in order.
var fieldNames = []string{
	"date", "time", "client-ip", "client-hostname", "partner-name", "server-hostname", "server-ip",
	"recipient-address", "event-id", "msgid", "priority", "recipient-report-status", "total-bytes",
	"number-recipients", "origination-time", "encryption", "service-version", "linked-msgid",
	"message-subject", "sender-address", "queue-id", "seq",
}

// Fields returns the names of the columns, in order, as the #Fields header lists them.
func Fields() []string { return append([]string(nil), fieldNames...) }

// Record is one line of a tracking log.
type Record struct {
	Time           time.Time     `json:"time"` // UTC
	ClientIP       string        `json:"client_ip,omitempty"`
	ClientHostname string        `json:"client_hostname,omitempty"`
	PartnerName    string        `json:"partner_name,omitempty"`
	ServerHostname string        `json:"server_hostname,omitempty"`
	ServerIP       string        `json:"server_ip,omitempty"`
	Recipient      string        `json:"recipient,omitempty"`
	EventID        track.EventID `json:"event_id"`
	MessageID      string        `json:"msgid,omitempty"`
	Priority       int           `json:"priority"`
	ReportStatus   string        `json:"recipient_report_status,omitempty"`
	TotalBytes     int64         `json:"total_bytes"`
	NumRecipients  int           `json:"number_recipients"`
	Origination    time.Time     `json:"origination_time,omitzero"`
	Encryption     string        `json:"encryption,omitempty"`
	ServiceVersion string        `json:"service_version,omitempty"`
	LinkedMsgID    string        `json:"linked_msgid,omitempty"`
	Subject        string        `json:"subject,omitempty"`
	Sender         string        `json:"sender,omitempty"`
	QueueID        string        `json:"queue_id"`
	Seq            uint64        `json:"seq"`
}

// EventName returns a short name for an event id, for people reading search results.
func EventName(id track.EventID) string {
	switch id {
	case track.EventReceived:
		return "received"
	case track.EventQueued:
		return "queued"
	case track.EventDelivered:
		return "delivered"
	case track.EventDeferred:
		return "deferred"
	case track.EventFailed:
		return "failed"
	case track.EventBounced:
		return "ndr"
	case track.EventExpired:
		return "expired"
	}
	return strconv.Itoa(int(id))
}

// FromEvent turns an event into its log records: one per recipient for a message-level event, one
// for a per-recipient event. props is the message's properties (ev.Props, or what a protocol 1
// plugin read back); nil writes the handle's fields only. version is the writing build's file
// version (service-version).
func FromEvent(ev track.Event, props *track.Properties, version string) []Record {
	return AppendRecords(nil, ev, props, version)
}

// AppendRecords appends the records FromEvent returns to dst, so that a writer of many events can
// reuse one slice.
func AppendRecords(dst []Record, ev track.Event, props *track.Properties, version string) []Record {
	r := Record{
		Time:           ev.Time.UTC(),
		PartnerName:    ev.Partner,
		EventID:        ev.ID,
		ReportStatus:   ev.Reply,
		ServiceVersion: version,
		QueueID:        ev.QueueID,
		Seq:            ev.Seq,
	}
	var rcpts []string
	if props != nil {
		r.ClientIP = props.ClientIP
		r.ClientHostname = props.ClientName
		if r.ClientHostname == "" {
			r.ClientHostname = props.Helo
		}
		r.ServerHostname = props.Server
		r.MessageID = props.MessageID
		r.TotalBytes = props.Size
		r.NumRecipients = len(props.Recipients)
		r.Origination = props.Received.UTC()
		r.Subject = props.Subject
		r.Sender = props.Sender
		rcpts = props.Recipients
	}
	if ev.Recipient != "" || len(rcpts) == 0 {
		r.Recipient = ev.Recipient
		return append(dst, r)
	}
	dst = slices.Grow(dst, len(rcpts))
	for _, rc := range rcpts {
		x := r
		x.Recipient = rc
		dst = append(dst, x)
	}
	return dst
}

const (
	dateLayout = "2006-01-02"
	timeLayout = "15:04:05.000000"
	origLayout = time.RFC3339Nano
)

// AppendLine appends r as one log line, newline included, to b. It formats each field in place:
// the plugin writes every record through here, and the temporary strings of formatting through
// fmt-style helpers were most of its allocations.
func (r Record) AppendLine(b []byte) []byte {
	b = appendDateTime(b, r.Time.UTC(), '\t')
	b = append(b, " GMT"...)
	for _, v := range [...]string{r.ClientIP, r.ClientHostname, r.PartnerName, r.ServerHostname, r.ServerIP, r.Recipient} {
		b = appendField(b, v)
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(r.EventID), 10)
	b = appendField(b, r.MessageID)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(r.Priority), 10)
	b = appendField(b, r.ReportStatus)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.TotalBytes, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(r.NumRecipients), 10)
	b = append(b, '\t')
	if !r.Origination.IsZero() {
		b = appendOrig(b, r.Origination.UTC())
	}
	for _, v := range [...]string{r.Encryption, r.ServiceVersion, r.LinkedMsgID, r.Subject, r.Sender, r.QueueID} {
		b = appendField(b, v)
	}
	b = append(b, '\t')
	b = strconv.AppendUint(b, r.Seq, 10)
	return append(b, '\n')
}

// appendDateTime appends t as dateLayout, sep, timeLayout. It is what t.AppendFormat gives for
// those layouts, written out because a layout is interpreted anew at every call and each line has
// three times in it.
func appendDateTime(b []byte, t time.Time, sep byte) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		b = t.AppendFormat(b, dateLayout)
		b = append(b, sep)
		return t.AppendFormat(b, timeLayout)
	}
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), sep,
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.')
	us := t.Nanosecond() / 1000
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return b
}

// appendOrig appends a UTC time as origLayout (RFC 3339 with the nanoseconds' trailing zeros cut).
func appendOrig(b []byte, t time.Time) []byte {
	year := t.Year()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, origLayout)
	}
	b = appendDateTime(b, t, 'T')
	b = b[:len(b)-7] // the fraction, written below with all nine digits
	if ns := t.Nanosecond(); ns != 0 {
		b = append(b, '.')
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		for div := pow10(digits - 1); div > 0; div /= 10 {
			b = append(b, byte('0'+ns/div%10))
		}
	}
	return append(b, 'Z')
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

func appendField(b []byte, v string) []byte {
	b = append(b, '\t')
	return tsv.AppendEscaped(b, v)
}

// ParseLine parses one log line (without its newline).
func ParseLine(line string) (Record, error) {
	raw := strings.Split(line, "\t")
	if len(raw) != len(fieldNames) {
		return Record{}, fmt.Errorf("tracking log line has %d fields, want %d", len(raw), len(fieldNames))
	}
	f := make([]string, len(raw))
	for i, v := range raw {
		u, err := tsv.Unescape(v)
		if err != nil {
			return Record{}, fmt.Errorf("tracking log field %s: %w", fieldNames[i], err)
		}
		f[i] = u
	}
	var r Record
	var err error
	ts, ok := strings.CutSuffix(f[1], " GMT")
	if !ok {
		return Record{}, fmt.Errorf("tracking log field time %q: want hh:mm:ss.ffffff GMT", f[1])
	}
	if r.Time, err = time.Parse(dateLayout+" "+timeLayout, f[0]+" "+ts); err != nil {
		return Record{}, fmt.Errorf("tracking log date/time: %w", err)
	}
	r.ClientIP, r.ClientHostname, r.PartnerName = f[2], f[3], f[4]
	r.ServerHostname, r.ServerIP, r.Recipient = f[5], f[6], f[7]
	id, err := strconv.Atoi(f[8])
	if err != nil {
		return Record{}, fmt.Errorf("tracking log field event-id: %w", err)
	}
	r.EventID = track.EventID(id)
	r.MessageID = f[9]
	if r.Priority, err = strconv.Atoi(f[10]); err != nil {
		return Record{}, fmt.Errorf("tracking log field priority: %w", err)
	}
	r.ReportStatus = f[11]
	if r.TotalBytes, err = strconv.ParseInt(f[12], 10, 64); err != nil {
		return Record{}, fmt.Errorf("tracking log field total-bytes: %w", err)
	}
	if r.NumRecipients, err = strconv.Atoi(f[13]); err != nil {
		return Record{}, fmt.Errorf("tracking log field number-recipients: %w", err)
	}
	if f[14] != "" {
		if r.Origination, err = time.Parse(origLayout, f[14]); err != nil {
			return Record{}, fmt.Errorf("tracking log field origination-time: %w", err)
		}
	}
	r.Encryption, r.ServiceVersion, r.LinkedMsgID = f[15], f[16], f[17]
	r.Subject, r.Sender, r.QueueID = f[18], f[19], f[20]
	if r.Seq, err = strconv.ParseUint(f[21], 10, 64); err != nil {
		return Record{}, fmt.Errorf("tracking log field seq: %w", err)
	}
	return r, nil
}
