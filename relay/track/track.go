// Package track is the contract between relayd and its message-tracking plugin (msgtrack): the
// events of a message's life, the properties of a message, and the seam through which the relay
// reports events without knowing whether a plugin runs, has crashed or is switched off.
//
// It is imported by the relay core, by the plugin host that supervises msgtrack, and by msgtrack
// itself, and depends on nothing of theirs.
package track

import (
	"context"
	"errors"
	"time"
)

// EventID numbers the events of a message's life, after Exchange message tracking's event ids.
type EventID int

// Event ids. 1019, 1020, 1030 and 1031 are Exchange's own; the rest extend the series.
const (
	EventReceived  EventID = 1019 // SMTP submit: the message was received and spooled
	EventQueued    EventID = 1020 // queued for remote delivery (begin outbound transfer)
	EventBounced   EventID = 1030 // non-delivery report generated
	EventDelivered EventID = 1031 // end outbound transfer: the next hop accepted it
	EventDeferred  EventID = 1032 // temporary failure; will try again
	EventFailed    EventID = 1033 // permanent failure at the next hop
	EventExpired   EventID = 1034 // gave up: the message outlived its queue lifetime
)

// Properties is an immutable snapshot of a message's properties.
type Properties struct {
	QueueID    string    `json:"queue_id"`
	MessageID  string    `json:"message_id,omitempty"`
	Sender     string    `json:"sender"`
	Recipients []string  `json:"recipients"`
	Size       int64     `json:"size"`
	Subject    string    `json:"subject,omitempty"`
	ClientIP   string    `json:"client_ip,omitempty"`
	ClientName string    `json:"client_name,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	Server     string    `json:"server,omitempty"` // this relay's host name
	Received   time.Time `json:"received"`
}

// Event is one step of a message's life.
type Event struct {
	Seq       uint64    `json:"seq"`  // assigned by the host's durable event journal, increasing
	Time      time.Time `json:"time"` // UTC
	ID        EventID   `json:"id"`
	QueueID   string    `json:"queue_id"`
	Recipient string    `json:"recipient,omitempty"` // for per-recipient events
	Partner   string    `json:"partner,omitempty"`   // next hop, host:port
	Reply     string    `json:"reply,omitempty"`     // next hop's reply, or the reason
	NextTry   time.Time `json:"next_try,omitempty"`  // for deferred events
	// Props is the message's properties at the time of the event. The relay always fills it in;
	// over protocol 1 the host sends the handle only and the plugin reads the properties back.
	Props *Properties `json:"props,omitempty"`
}

// Recorder receives events from the relay core. Record must not block on the plugin: the
// implementation keeps the event (durably) and hands it to the plugin when it can.
type Recorder interface {
	Record(ev Event)
}

// Journaled is implemented by a Recorder that keeps events on disk but makes them durable a little
// after Record returns: the tracking host appends to a journal that it fsyncs in rounds (every
// 50 ms), so that recording never waits for the disk. The queue writes a message's removal from
// the spool only once the events that ended the message's life are on disk: a power cut in
// between then leaves the message in the spool, to be delivered again (a duplicate), and never
// takes both the message and the record of its delivery.
type Journaled interface {
	Recorder
	// RecordSeq records ev as Record does and returns the seq it gave it, or 0 when it kept
	// nothing (tracking switched off, or the event could not be journaled) and there is nothing
	// to wait for.
	RecordSeq(ev Event) uint64
	// Synced returns the highest seq on disk and a channel that is closed when that may have
	// changed.
	Synced() (seq uint64, changed <-chan struct{})
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(Event)

// Record calls f(ev).
func (f RecorderFunc) Record(ev Event) { f(ev) }

// Discard is a Recorder that drops every event: tracking switched off at build time.
var Discard Recorder = RecorderFunc(func(Event) {})

// ErrNoMessage is returned by a MessageSource for a message that is no longer in the queue
// (delivered and removed, or bounced).
var ErrNoMessage = errors.New("no such message in the queue")

// MessageSource lets a protocol 1 plugin read a message's properties back from the relay.
type MessageSource interface {
	Properties(ctx context.Context, queueID string) (Properties, error)
}
