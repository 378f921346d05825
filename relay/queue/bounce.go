package queue

import (
	"context"
	"io"
	"strings"
	"time"

	"relayfix/relay/dsn"
	"relayfix/relay/spool"
)

// bounce queues a delivery status notification to env's sender, durably.
func (q *Queue) bounce(env *spool.Envelope, body *io.SectionReader, failed []dsn.Recipient, now time.Time) error {
	id := q.NewID()
	msg, err := dsn.Build(dsn.Report{
		ReportingMTA: q.cfg.Hostname,
		QueueID:      env.ID,
		Sender:       env.Sender,
		Arrival:      env.Received,
		Date:         now,
		MessageID:    "<" + id + "@" + q.cfg.Hostname + ">",
		Recipients:   failed,
		Original:     io.NewSectionReader(body, 0, body.Size()),
	})
	if err != nil {
		return err
	}
	benv := &spool.Envelope{
		ID:         id,
		Sender:     "",
		Recipients: []string{env.Sender},
		Received:   now,
		Size:       int64(len(msg)),
		MessageID:  "<" + id + "@" + q.cfg.Hostname + ">",
		Subject:    "Undelivered Mail Returned to Sender",
		Server:     q.cfg.Hostname,
		Bounce:     true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return q.Accept(ctx, benv, nil, msg)
}

// statusOf extracts an enhanced status code (x.y.z) from an SMTP reply, or returns def.
func statusOf(reply, def string) string {
	for _, f := range strings.Fields(reply) {
		if len(f) >= 5 && (f[0] == '2' || f[0] == '4' || f[0] == '5') && f[1] == '.' && strings.Count(f, ".") == 2 {
			return f
		}
	}
	return def
}
