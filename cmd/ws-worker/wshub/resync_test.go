package wshub

import (
	"errors"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/gorilla/websocket"
)

// expectResync checks that the server closed c for a resync, after the reload frame when
// withReload.
func (c *wsClient) expectResync(withReload bool) {
	c.t.Helper()
	if withReload {
		c.expect("debug:debug:reload")
	}
	c.expectEmpty()
	err := c.waitClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseResync || ce.Text != closeResyncReason {
		c.t.Fatalf("closed with %v, want %d %q", err, CloseResync, closeResyncReason)
	}
	c.expectEmpty()
}

// A loss on a topic closes exactly the connections that watch it, with CloseResync, after
// debug:debug:reload for those that subscribed to debug:debug (a page without live.js
// reloads on it). The topic's ZeroMQ subscription is held, so pages coming back are
// answered at once and receive what follows.
func TestResyncClosesTheTopicsWatchers(t *testing.T) {
	e := newEnv(t, nil, false)
	page, bare, other := e.dial(), e.dial(), e.dial()
	page.mustSubscribe("bokehplot:doc1", "read1")
	page.mustSubscribe("debug:debug", "")
	bare.mustSubscribe("bokehplot:doc1", "read1")
	other.mustSubscribe("bokehplot:doc2", "read2")
	e.syncRoute()

	e.hub.resync(broker.Loss{Reason: broker.LossGap, Topics: []string{"bokehplot:doc1", "bokehplot:nobody"}})
	page.expectResync(true)
	bare.expectResync(false)
	e.publish("bokehplot:doc2", push(1))
	other.expect("bokehplot:doc2:" + push(1))

	st := e.hub.Stats()
	if st.Resyncs["gap"] != 1 || st.ResyncCloses != 2 {
		t.Fatalf("stats %+v: want 1 gap resync closing 2 connections", st)
	}
	waitFor(t, "the closed connections to be gone", func() bool { return e.hub.Stats().ConnectionsCurrent == 1 })
	if st := e.hub.Stats(); st.ZMQTopics != 2 { // doc1 (held) and doc2
		t.Fatalf("stats %+v: want doc1's subscription held", st)
	}
	back := e.dial()
	back.mustSubscribe("bokehplot:doc1", "read1")
	e.publish("bokehplot:doc1", push(2))
	back.expect("bokehplot:doc1:" + push(2))

	// Once the hold is over, a topic nobody watches is let go; one watched again is kept.
	e.hub.releaseHeld(time.Now().Add(ResyncHold + time.Second))
	if st := e.hub.Stats(); st.ZMQTopics != 2 {
		t.Fatalf("stats %+v: doc1 is watched again, its subscription must stay", st)
	}
	back.conn.Close()
	waitFor(t, "doc1's subscription to go", func() bool { return e.hub.Stats().ZMQTopics == 1 })
}

// A loss of unknown extent (the ZeroMQ connection broke) resyncs every connection.
func TestResyncEverything(t *testing.T) {
	e := newEnv(t, nil, false)
	plot, user := e.dial(), e.dial()
	plot.mustSubscribe("bokehplot:doc1", "read1")
	user.mustSubscribe("bokehuser:alice", nil)
	e.hub.resync(broker.Loss{Reason: broker.LossReconnect})
	plot.expectResync(false)
	user.expectResync(false)
	if st := e.hub.Stats(); st.Resyncs["reconnect"] != 1 || st.ResyncCloses != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// End to end within a worker: the publisher restarts on the same address, the worker's
// ZeroMQ socket reconnects, and every page is told to resync; the page that comes back
// receives the new publisher's changes.
func TestResyncAfterPublisherRestart(t *testing.T) {
	e := newZMQEnv(t, nil, false)
	addr := e.pub.Endpoint()
	page := e.dial()
	page.mustSubscribe("bokehplot:doc1", "read1")
	e.pub.Close()
	var err error
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(probeGap) {
		if e.pub, err = broker.NewZMQPublisher(addr, broker.Bind, broker.WithLogger(quietLogger())); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bind %s again: %v", addr, err)
		}
	}
	page.expectResync(false)
	back := e.dial()
	back.mustSubscribe("bokehplot:doc1", "read1")
	e.publish("bokehplot:doc1", push(3))
	back.expect("bokehplot:doc1:" + push(3))
	if st := e.hub.Stats(); st.Resyncs["reconnect"] != 1 || st.ZMQReconnects != 1 || st.SubscribeAckTimeouts != 0 {
		t.Fatalf("stats %+v", st)
	}
}
