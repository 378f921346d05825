package trackrpc

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"

	"relayfix/relay/track"
)

// RPCClient is the host's side of a Tracker.
type RPCClient struct {
	client   *rpc.Client
	protocol int
	noLines  atomic.Bool // the plugin predates TrackLines: send protocol 2 batches as events
}

// Protocol returns the negotiated protocol version.
func (c *RPCClient) Protocol() int { return c.protocol }

func (c *RPCClient) Version() (string, error) {
	var v string
	err := c.client.Call("Plugin.Version", struct{}{}, &v)
	return v, err
}

func (c *RPCClient) Health() error {
	var none struct{}
	return c.client.Call("Plugin.Health", struct{}{}, &none)
}

// Track sends a batch. Over protocol 1 the properties are stripped: the plugin reads them back.
func (c *RPCClient) Track(events []track.Event) (Ack, error) {
	if c.protocol == 1 {
		handles := make([]track.Event, len(events))
		for i, ev := range events {
			ev.Props = nil
			handles[i] = ev
		}
		events = handles
	}
	var ack Ack
	err := c.client.Call("Plugin.Track", events, &ack)
	return ack, err
}

// TrackLines sends a batch of event lines (see Lines). Over protocol 2 the lines go as they are;
// over protocol 1 they are decoded and sent as handles, without their properties.
func (c *RPCClient) TrackLines(b Lines) (Ack, error) {
	if c.protocol == 1 {
		events, err := ParseLines(b.Data)
		if err != nil {
			return Ack{}, err
		}
		return c.Track(events)
	}
	if !c.noLines.Load() {
		var ack Ack
		err := c.client.Call("Plugin.TrackLines", b, &ack)
		var se rpc.ServerError
		if !errors.As(err, &se) || !strings.Contains(string(se), "can't find method Plugin.TrackLines") {
			return ack, err
		}
		// A protocol 2 build from before batches went as lines (an older hotfix, or a rollback
		// to one): it takes the same events as structs.
		c.noLines.Store(true)
	}
	events, err := ParseLines(b.Data)
	if err != nil {
		return Ack{}, err
	}
	return c.Track(events)
}

func (c *RPCClient) Sync() (Ack, error) {
	var ack Ack
	err := c.client.Call("Plugin.Sync", struct{}{}, &ack)
	return ack, err
}

// RPCServer is the plugin's side: it serves Impl to the host.
type RPCServer struct {
	impl   Tracker
	broker *plugin.MuxBroker
}

func (s *RPCServer) Version(_ struct{}, v *string) error {
	var err error
	*v, err = s.impl.Version()
	return err
}

func (s *RPCServer) Health(_ struct{}, _ *struct{}) error { return s.impl.Health() }

func (s *RPCServer) Track(events []track.Event, ack *Ack) error {
	var err error
	*ack, err = s.impl.Track(events)
	return err
}

// TrackLines decodes a protocol 2 batch and hands it to the implementation.
func (s *RPCServer) TrackLines(b Lines, ack *Ack) error {
	events, err := ParseLines(b.Data)
	if err != nil {
		return fmt.Errorf("tracking batch: %w", err)
	}
	*ack, err = s.impl.Track(events)
	return err
}

func (s *RPCServer) Sync(_ struct{}, ack *Ack) error {
	var err error
	*ack, err = s.impl.Sync()
	return err
}

// Attach dials the host's message source on broker stream id and hands it to the implementation.
func (s *RPCServer) Attach(id uint32, _ *struct{}) error {
	u, ok := s.impl.(SourceUser)
	if !ok {
		return fmt.Errorf("this tracking build does not read properties back")
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return fmt.Errorf("dial message source: %w", err)
	}
	u.SetSource(&sourceClient{client: rpc.NewClient(conn)})
	return nil
}

// PropsReply carries a lookup's answer. A missing message is Found=false rather than an error, so
// that it crosses net/rpc as a fact and not as a string to compare.
type PropsReply struct {
	Found bool
	Props track.Properties
}

// sourceServer serves the relay's MessageSource to a protocol 1 plugin.
type sourceServer struct{ src track.MessageSource }

func (s *sourceServer) Properties(queueID string, r *PropsReply) error {
	p, err := s.src.Properties(context.Background(), queueID)
	if errors.Is(err, track.ErrNoMessage) {
		r.Found = false
		return nil
	}
	if err != nil {
		return err
	}
	r.Found, r.Props = true, p
	return nil
}

// sourceClient is the plugin's view of the relay's MessageSource.
type sourceClient struct{ client *rpc.Client }

func (c *sourceClient) Properties(ctx context.Context, queueID string) (track.Properties, error) {
	var r PropsReply
	call := c.client.Go("Plugin.Properties", queueID, &r, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return track.Properties{}, ctx.Err()
	}
	if call.Error != nil {
		return track.Properties{}, fmt.Errorf("read properties of %s: %w", queueID, call.Error)
	}
	if !r.Found {
		return track.Properties{}, track.ErrNoMessage
	}
	return r.Props, nil
}
