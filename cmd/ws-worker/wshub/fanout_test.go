package wshub

import (
	"fmt"
	"testing"
)

func push(i int) string {
	return fmt.Sprintf(`{"msgtype": "modelpush", "modelspecs": [{"id": "m%d", "text": "q\"uote\nnewline é 日本 🙂 </script>"}]}`, i)
}

func TestFanOutDelivery(t *testing.T) {
	e := newEnv(t, nil, false)
	a1, a2, b, u := e.dial(), e.dial(), e.dial(), e.dial()
	a1.mustSubscribe("bokehplot:doc1", "write1")
	a2.mustSubscribe("bokehplot:doc1", "read1")
	b.mustSubscribe("bokehplot:doc2", "read2")
	u.mustSubscribe("bokehuser:alice", nil)
	u.mustSubscribe("debug:debug", "")
	e.syncRoute()

	const n = 100
	for i := range n {
		e.publish("bokehplot:doc1", push(i))
	}
	for _, c := range []*wsClient{a1, a2} {
		for i := range n {
			c.expect("bokehplot:doc1:" + push(i))
		}
	}

	t.Run("other docs get nothing", func(t *testing.T) {
		e.publish("bokehplot:doc2", push(-1))
		b.expect("bokehplot:doc2:" + push(-1)) // doc1's frames would have come first
	})

	t.Run("only modelpush and status reach bokehplot", func(t *testing.T) {
		before := e.hub.Stats().DroppedMsgtype
		e.publish("bokehplot:doc1", `{"msgtype": "modeldel", "modelspecs": []}`)
		e.publish("bokehplot:doc1", `not json`)
		e.publish("bokehplot:doc1", `{"modelspecs": []}`)
		status := `{"msgtype": "status", "status": ["x"]}`
		e.publish("bokehplot:doc1", status)
		e.publish("bokehplot:doc1", push(-4))
		for _, c := range []*wsClient{a1, a2} {
			c.expect("bokehplot:doc1:" + status)
			c.expect("bokehplot:doc1:" + push(-4))
		}
		if got := e.hub.Stats().DroppedMsgtype - before; got != 3 {
			t.Fatalf("dropped %d frames for msgtype, want 3", got)
		}
	})

	t.Run("other kinds pass through", func(t *testing.T) {
		e.publish("bokehuser:alice", `{"msgtype": "docchange"}`)
		e.publish("debug:debug", "reload")
		u.expect(`bokehuser:alice:{"msgtype": "docchange"}`)
		u.expect("debug:debug:reload")
	})

	t.Run("unwatched topics never reach the worker", func(t *testing.T) {
		for i := range 50 {
			e.publish("bokehplot:doc9", push(i))
			e.publish("bokehplot:doc2", push(i)) // watched by b only
		}
		e.publish("bokehplot:doc1", push(-5))
		a1.expect("bokehplot:doc1:" + push(-5))
		a2.expect("bokehplot:doc1:" + push(-5))
		for i := range 50 {
			b.expect("bokehplot:doc2:" + push(i))
		}
		st := e.hub.Stats()
		if st.Unwatched != 0 {
			t.Fatalf("unwatched %d, want 0: %+v", st.Unwatched, st)
		}
	})

	a1.expectEmpty()
	a2.expectEmpty()
	b.expectEmpty()
	u.expectEmpty()
	if st := e.hub.Stats(); st.ZMQMalformed != 0 || st.DroppedSlow != 0 || st.DroppedClosed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPrefixCollisionFiltered(t *testing.T) {
	e := newZMQEnv(t, nil, false) // ZeroMQ matches prefixes
	c := e.dial()
	c.mustSubscribe("bokehplot:abc", "kabc")
	e.syncRoute()
	for i := range 10 {
		e.publish("bokehplot:abcd", push(i))
	}
	e.publish("bokehplot:abc", push(-1))
	c.expect("bokehplot:abc:" + push(-1))
	c.expectEmpty()
	// ZeroMQ let them through (byte prefix), the worker dropped them: that is what the
	// unwatched counter is for.
	if got := e.hub.Stats().Unwatched; got != 10 {
		t.Fatalf("unwatched %d, want 10", got)
	}
}

func TestZMQSubscriptionFollowsClients(t *testing.T) {
	e := newEnv(t, nil, false)
	c1, c2 := e.dial(), e.dial()
	c1.mustSubscribe("bokehplot:doc1", "write1")
	c2.mustSubscribe("bokehplot:doc1", "read1")
	base := e.hub.Stats().ZMQTopics
	if base != 1 {
		t.Fatalf("zmq topics %d, want 1", base)
	}
	c1.conn.Close()
	waitFor(t, "first client to leave", func() bool { return e.hub.Stats().ConnectionsCurrent == 1 })
	if got := e.hub.Stats().ZMQTopics; got != 1 {
		t.Fatalf("zmq topics %d after one of two clients left, want 1", got)
	}
	c2.conn.Close()
	waitFor(t, "last client to leave", func() bool { return e.hub.Stats().ConnectionsCurrent == 0 })
	if st := e.hub.Stats(); st.ZMQTopics != 0 || st.Subscriptions != 0 {
		t.Fatalf("after all clients left: %+v", st)
	}
	e.syncRoute() // the unsubscribe has reached the publisher
	for i := range 20 {
		e.publish("bokehplot:doc1", push(i))
	}
	e.syncRoute() // and anything published before has arrived
	if got := e.hub.Stats().Unwatched; got != 0 {
		t.Fatalf("unwatched %d, want 0", got)
	}
}
