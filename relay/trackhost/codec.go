package trackhost

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"relayfix/relay/track"
)

// The journal stores one event per line as tab-separated fields, escaped as the tracking log
// escapes them (\\ \t \n \r), because encoding/json's reflection was the larger part of what
// tracking cost the relay. The fields, in order:
//
//	seq time id queue-id recipient partner reply next-try props
//
// and, when props is "1", the message's properties:
//
//	msgid sender size subject client-ip client-name helo server received recipient...
//
// Times are Unix nanoseconds in UTC (empty for the zero time).
const codecVersion = "e1"

func appendEvent(b []byte, ev track.Event) []byte {
	b = append(b, codecVersion...)
	b = appendField(b, strconv.FormatUint(ev.Seq, 10))
	b = appendTime(b, ev.Time)
	b = appendField(b, strconv.Itoa(int(ev.ID)))
	b = appendField(b, ev.QueueID)
	b = appendField(b, ev.Recipient)
	b = appendField(b, ev.Partner)
	b = appendField(b, ev.Reply)
	b = appendTime(b, ev.NextTry)
	if p := ev.Props; p != nil {
		b = appendField(b, "1")
		b = appendField(b, p.QueueID)
		b = appendField(b, p.MessageID)
		b = appendField(b, p.Sender)
		b = appendField(b, strconv.FormatInt(p.Size, 10))
		b = appendField(b, p.Subject)
		b = appendField(b, p.ClientIP)
		b = appendField(b, p.ClientName)
		b = appendField(b, p.Helo)
		b = appendField(b, p.Server)
		b = appendTime(b, p.Received)
		for _, r := range p.Recipients {
			b = appendField(b, r)
		}
	} else {
		b = appendField(b, "0")
	}
	return append(b, '\n')
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, '\t')
	}
	return appendField(b, strconv.FormatInt(t.UnixNano(), 10))
}

func appendField(b []byte, s string) []byte {
	b = append(b, '\t')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// parseEvent decodes one line (without its newline).
func parseEvent(line []byte) (track.Event, error) {
	f := strings.Split(string(line), "\t")
	if len(f) < 10 || f[0] != codecVersion {
		return track.Event{}, fmt.Errorf("malformed journal line")
	}
	for i := range f {
		if strings.IndexByte(f[i], '\\') >= 0 {
			u, err := unescape(f[i])
			if err != nil {
				return track.Event{}, err
			}
			f[i] = u
		}
	}
	var ev track.Event
	var err error
	if ev.Seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return ev, fmt.Errorf("journal seq: %w", err)
	}
	if ev.Time, err = parseTime(f[2]); err != nil {
		return ev, err
	}
	id, err := strconv.Atoi(f[3])
	if err != nil {
		return ev, fmt.Errorf("journal event id: %w", err)
	}
	ev.ID = track.EventID(id)
	ev.QueueID, ev.Recipient, ev.Partner, ev.Reply = f[4], f[5], f[6], f[7]
	if ev.NextTry, err = parseTime(f[8]); err != nil {
		return ev, err
	}
	switch f[9] {
	case "0":
		if len(f) != 10 {
			return ev, fmt.Errorf("malformed journal line")
		}
		return ev, nil
	case "1":
	default:
		return ev, fmt.Errorf("malformed journal line")
	}
	if len(f) < 20 {
		return ev, fmt.Errorf("malformed journal line")
	}
	p := &track.Properties{QueueID: f[10], MessageID: f[11], Sender: f[12], Subject: f[14],
		ClientIP: f[15], ClientName: f[16], Helo: f[17], Server: f[18]}
	if p.Size, err = strconv.ParseInt(f[13], 10, 64); err != nil {
		return ev, fmt.Errorf("journal size: %w", err)
	}
	if p.Received, err = parseTime(f[19]); err != nil {
		return ev, err
	}
	p.Recipients = append([]string{}, f[20:]...)
	ev.Props = p
	return ev, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("journal time: %w", err)
	}
	return time.Unix(0, n).UTC(), nil
}

func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("journal field ends in a backslash")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("journal field: unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}
