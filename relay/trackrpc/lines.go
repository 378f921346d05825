package trackrpc

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"relayfix/internal/tsv"
	"relayfix/relay/track"
)

// Events travel as lines: the host's journal stores one event per line, and protocol 2 hands the
// journal's lines to the plugin as they are (Lines), so that neither side spends CPU on
// re-encoding them. A line is tab-separated fields, escaped as the tracking log escapes them
// (\\ \t \n \r); encoding/json's reflection was the larger part of what tracking cost the relay,
// and gob's was a large part of what it cost the plugin. The fields, in order:
//
//	e1 seq time id queue-id recipient partner reply next-try props
//
// and, when props is "1", the message's properties:
//
//	queue-id msgid sender size subject client-ip client-name helo server received recipient...
//
// Times are Unix nanoseconds in UTC (empty for the zero time). "e1" names this encoding.
const lineVersion = "e1"

// Lines is a protocol 2 batch: whole event lines, each ending in a newline, in seq order.
type Lines struct {
	Data []byte
}

// AppendEvent appends ev to b as one line, newline included.
func AppendEvent(b []byte, ev track.Event) []byte {
	b = append(b, lineVersion...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = appendTime(b, ev.Time)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(ev.ID), 10)
	b = appendField(b, ev.QueueID)
	b = appendField(b, ev.Recipient)
	b = appendField(b, ev.Partner)
	b = appendField(b, ev.Reply)
	b = appendTime(b, ev.NextTry)
	if p := ev.Props; p != nil {
		b = append(b, "\t1"...)
		b = appendField(b, p.QueueID)
		b = appendField(b, p.MessageID)
		b = appendField(b, p.Sender)
		b = append(b, '\t')
		b = strconv.AppendInt(b, p.Size, 10)
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
		b = append(b, "\t0"...)
	}
	return append(b, '\n')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '\t')
	if t.IsZero() {
		return b
	}
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

func appendField(b []byte, s string) []byte {
	return tsv.AppendEscaped(append(b, '\t'), s)
}

// LineSeq returns the seq of an event line without decoding the rest of it.
func LineSeq(line []byte) (uint64, error) {
	rest, ok := bytes.CutPrefix(line, []byte(lineVersion+"\t"))
	if !ok {
		return 0, fmt.Errorf("malformed event line")
	}
	var seq uint64
	n := 0
	for ; n < len(rest) && rest[n] != '\t'; n++ {
		c := rest[n]
		if c < '0' || c > '9' || seq > (1<<64-1-9)/10 {
			return 0, fmt.Errorf("malformed event line: bad seq")
		}
		seq = seq*10 + uint64(c-'0')
	}
	if n == 0 || n == len(rest) {
		return 0, fmt.Errorf("malformed event line: bad seq")
	}
	return seq, nil
}

// ParseEvent decodes one line (without its newline).
func ParseEvent(line []byte) (track.Event, error) {
	var a lineArena
	return a.parseEvent(string(line))
}

// ParseLines decodes a batch of whole lines. The events' strings share one copy of data, and
// their properties and recipient lists share a few allocations: the plugin decodes every event
// the relay records, and one allocation per field or per event was most of what that cost.
func ParseLines(data []byte) ([]track.Event, error) {
	s := string(data)
	n := strings.Count(s, "\n")
	out := make([]track.Event, 0, n)
	a := lineArena{props: make([]track.Properties, 0, n), rcpts: make([]string, 0, n)}
	for len(s) > 0 {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			return out, fmt.Errorf("event batch ends in a torn line")
		}
		ev, err := a.parseEvent(line)
		if err != nil {
			return out, err
		}
		out = append(out, ev)
		s = rest
	}
	return out, nil
}

// lineArena hands out the properties and recipient lists of a batch's events from shared slices.
type lineArena struct {
	props []track.Properties
	rcpts []string
}

func (a *lineArena) newProps() *track.Properties {
	if len(a.props) == cap(a.props) {
		a.props = make([]track.Properties, 0, max(16, 2*cap(a.props)))
	}
	a.props = a.props[:len(a.props)+1]
	return &a.props[len(a.props)-1]
}

// recipients returns a copy of rcpts that does not share its backing array with later copies.
func (a *lineArena) recipients(rcpts []string) []string {
	if len(rcpts) == 0 {
		return []string{}
	}
	if len(a.rcpts)+len(rcpts) > cap(a.rcpts) {
		a.rcpts = make([]string, 0, max(64, 2*cap(a.rcpts), len(rcpts)))
	}
	start := len(a.rcpts)
	a.rcpts = append(a.rcpts, rcpts...)
	return a.rcpts[start:len(a.rcpts):len(a.rcpts)]
}

// maxFields bounds the fields parseEvent splits on the stack: the event's, the properties' and a
// few recipients; lines with more recipients fall back to the heap.
const maxFields = 24

func (a *lineArena) parseEvent(line string) (track.Event, error) {
	var arr [maxFields]string
	f := arr[:0]
	escaped := strings.IndexByte(line, '\\') >= 0
	for rest := line; ; {
		i := strings.IndexByte(rest, '\t')
		if i < 0 {
			f = append(f, rest)
			break
		}
		f = append(f, rest[:i])
		rest = rest[i+1:]
	}
	if len(f) < 10 || f[0] != lineVersion {
		return track.Event{}, fmt.Errorf("malformed event line")
	}
	if escaped {
		for i := range f {
			if strings.IndexByte(f[i], '\\') >= 0 {
				u, err := tsv.Unescape(f[i])
				if err != nil {
					return track.Event{}, fmt.Errorf("event field %d: %w", i, err)
				}
				f[i] = u
			}
		}
	}
	var ev track.Event
	var err error
	if ev.Seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return ev, fmt.Errorf("event seq: %w", err)
	}
	if ev.Time, err = parseTime(f[2]); err != nil {
		return ev, err
	}
	id, err := strconv.Atoi(f[3])
	if err != nil {
		return ev, fmt.Errorf("event id: %w", err)
	}
	ev.ID = track.EventID(id)
	ev.QueueID, ev.Recipient, ev.Partner, ev.Reply = f[4], f[5], f[6], f[7]
	if ev.NextTry, err = parseTime(f[8]); err != nil {
		return ev, err
	}
	switch f[9] {
	case "0":
		if len(f) != 10 {
			return ev, fmt.Errorf("malformed event line")
		}
		return ev, nil
	case "1":
	default:
		return ev, fmt.Errorf("malformed event line")
	}
	if len(f) < 20 {
		return ev, fmt.Errorf("malformed event line")
	}
	p := a.newProps()
	*p = track.Properties{QueueID: f[10], MessageID: f[11], Sender: f[12], Subject: f[14],
		ClientIP: f[15], ClientName: f[16], Helo: f[17], Server: f[18]}
	if p.Size, err = strconv.ParseInt(f[13], 10, 64); err != nil {
		return ev, fmt.Errorf("event size: %w", err)
	}
	if p.Received, err = parseTime(f[19]); err != nil {
		return ev, err
	}
	p.Recipients = a.recipients(f[20:])
	ev.Props = p
	return ev, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("event time: %w", err)
	}
	return time.Unix(0, n).UTC(), nil
}
