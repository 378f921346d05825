package trackrpc

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"relayfix/relay/track"
)

// fakeTracker records what reaches the plugin side and, over protocol 1, reads properties back.
type fakeTracker struct {
	mu     sync.Mutex
	got    []track.Event
	src    track.MessageSource
	looked map[string]error
}

func (f *fakeTracker) Version() (string, error) { return "6.5.7651.45", nil }
func (f *fakeTracker) Health() error            { return nil }
func (f *fakeTracker) SetSource(src track.MessageSource) {
	f.mu.Lock()
	f.src = src
	f.mu.Unlock()
}

func (f *fakeTracker) Track(evs []track.Event) (Ack, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, evs...)
	if f.src != nil {
		for _, ev := range evs {
			_, err := f.src.Properties(context.Background(), ev.QueueID)
			f.looked[ev.QueueID] = err
		}
	}
	return Ack{Synced: evs[len(evs)-1].Seq}, nil
}

func (f *fakeTracker) Sync() (Ack, error) { return Ack{}, nil }

type mapSource map[string]track.Properties

func (m mapSource) Properties(_ context.Context, id string) (track.Properties, error) {
	p, ok := m[id]
	if !ok {
		return track.Properties{}, track.ErrNoMessage
	}
	return p, nil
}

func TestProtocols(t *testing.T) {
	props := &track.Properties{QueueID: "HERE", Sender: "a@x", Recipients: []string{"b@y"}}
	src := mapSource{"HERE": *props}
	evs := []track.Event{
		{Seq: 7, Time: time.Unix(1, 0).UTC(), ID: track.EventQueued, QueueID: "HERE", Props: props},
		{Seq: 8, Time: time.Unix(2, 0).UTC(), ID: track.EventDelivered, QueueID: "GONE", Recipient: "b@y", Props: props},
	}
	for _, protocol := range []int{1, 2} {
		t.Run(map[int]string{1: "handles", 2: "snapshots"}[protocol], func(t *testing.T) {
			impl := &fakeTracker{looked: make(map[string]error)}
			ps := map[string]plugin.Plugin{PluginName: &Plugin{Protocol: protocol, Impl: impl, Source: src}}
			client, _ := plugin.TestPluginRPCConn(t, ps, nil)
			defer client.Close()
			raw, err := client.Dispense(PluginName)
			if err != nil {
				t.Fatal(err)
			}
			tr := raw.(Tracker)
			if v, err := tr.Version(); err != nil || v != "6.5.7651.45" {
				t.Fatalf("Version() = %q, %v", v, err)
			}
			ack, err := tr.Track(evs)
			if err != nil || ack.Synced != 8 {
				t.Fatalf("Track: ack %+v, %v", ack, err)
			}
			for i, ev := range impl.got {
				if ev.Seq != evs[i].Seq || ev.QueueID != evs[i].QueueID || !ev.Time.Equal(evs[i].Time) {
					t.Errorf("event %d arrived as %+v", i, ev)
				}
				if (ev.Props != nil) != (protocol == 2) {
					t.Errorf("protocol %d: event %d props %v", protocol, i, ev.Props)
				}
			}
			if protocol == 1 {
				// The plugin read the properties back over the broker; a removed message is
				// ErrNoMessage on the plugin's side too, not an error string.
				if err := impl.looked["HERE"]; err != nil {
					t.Errorf("lookup of a queued message: %v", err)
				}
				if err := impl.looked["GONE"]; !errors.Is(err, track.ErrNoMessage) {
					t.Errorf("lookup of a removed message: %v, want ErrNoMessage", err)
				}
			} else if len(impl.looked) != 0 {
				t.Errorf("protocol 2 called back: %v", impl.looked)
			}

			// The host sends its journal's lines: as they are over protocol 2, as handles
			// over protocol 1.
			var lines []byte
			for _, ev := range evs {
				ev.Seq += 10
				lines = AppendEvent(lines, ev)
			}
			impl.got = nil
			ack, err = tr.(*RPCClient).TrackLines(Lines{Data: lines})
			if err != nil || ack.Synced != 18 || len(impl.got) != len(evs) {
				t.Fatalf("TrackLines: ack %+v, %d events, %v", ack, len(impl.got), err)
			}
			for i, ev := range impl.got {
				if ev.Seq != evs[i].Seq+10 || ev.QueueID != evs[i].QueueID || !ev.Time.Equal(evs[i].Time) {
					t.Errorf("line %d arrived as %+v", i, ev)
				}
				if protocol == 2 && !reflect.DeepEqual(ev.Props, evs[i].Props) {
					t.Errorf("line %d props %+v, want %+v", i, ev.Props, evs[i].Props)
				}
				if protocol == 1 && ev.Props != nil {
					t.Errorf("protocol 1: line %d sent props %+v", i, ev.Props)
				}
			}
			if _, err := tr.(*RPCClient).TrackLines(Lines{Data: lines[:len(lines)-1]}); err == nil {
				t.Error("TrackLines of a torn batch: nil error")
			}
		})
	}
}

func TestSetsOffersProtocols(t *testing.T) {
	sets := Sets(nil, nil, 1, 2)
	if len(sets) != 2 || sets[1][PluginName].(*Plugin).Protocol != 1 || sets[2][PluginName].(*Plugin).Protocol != 2 {
		t.Fatalf("Sets: %+v", sets)
	}
}

// legacyServer is a protocol 2 plugin from before TrackLines: it serves Track only.
type legacyServer struct{ s *RPCServer }

func (l *legacyServer) Version(a struct{}, v *string) error   { return l.s.Version(a, v) }
func (l *legacyServer) Health(a struct{}, r *struct{}) error  { return l.s.Health(a, r) }
func (l *legacyServer) Track(evs []track.Event, a *Ack) error { return l.s.Track(evs, a) }
func (l *legacyServer) Sync(a struct{}, ack *Ack) error       { return l.s.Sync(a, ack) }

type legacyPlugin struct{ Plugin }

func (p *legacyPlugin) Server(b *plugin.MuxBroker) (any, error) {
	return &legacyServer{s: &RPCServer{impl: p.Impl, broker: b}}, nil
}

// TestTrackLinesToAnOlderBuild: a host sends its batches to a protocol 2 build that predates
// TrackLines as events, so that a hotfix or rollback to such a build keeps tracking.
func TestTrackLinesToAnOlderBuild(t *testing.T) {
	impl := &fakeTracker{looked: make(map[string]error)}
	ps := map[string]plugin.Plugin{PluginName: &legacyPlugin{Plugin{Protocol: 2, Impl: impl}}}
	client, _ := plugin.TestPluginRPCConn(t, ps, nil)
	defer client.Close()
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	rc := raw.(*RPCClient)
	props := &track.Properties{QueueID: "Q", Recipients: []string{"b@y"}}
	for seq := uint64(1); seq <= 2; seq++ {
		line := AppendEvent(nil, track.Event{Seq: seq, Time: time.Unix(1, 0).UTC(), ID: track.EventQueued, QueueID: "Q", Props: props})
		ack, err := rc.TrackLines(Lines{Data: line})
		if err != nil || ack.Synced != seq {
			t.Fatalf("batch %d: ack %+v, %v", seq, ack, err)
		}
	}
	if len(impl.got) != 2 || !reflect.DeepEqual(impl.got[1].Props, props) {
		t.Fatalf("the older build got %+v", impl.got)
	}
}
