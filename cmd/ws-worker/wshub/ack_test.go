package wshub

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/broker/brokertest"
)

// tempTopic is a fresh bokehplot topic that needs no document keys.
func tempTopic(k int) string { return fmt.Sprintf("bokehplot:temporary-%032x", k) }

// A client that got subscribesuccess receives every message published after it, the very
// first included, in order; no syncRoute here, that is the point.
func TestSubscribeSuccessMeansDelivery(t *testing.T) {
	e := newZMQEnv(t, nil, false)
	const n = 200
	for k := range 20 {
		topic := tempTopic(k)
		c := e.dial()
		c.mustSubscribe(topic, nil)
		for i := range n {
			e.publish(topic, push(i))
		}
		for i := range n {
			c.expect(topic + ":" + push(i))
		}
		c.expectEmpty()
	}
	if st := e.hub.Stats(); st.SubscribeAckTimeouts != 0 || st.Unwatched != 0 || st.ZMQAcks < 20 {
		t.Fatalf("stats %+v", st)
	}
}

// Several clients subscribe to one fresh topic at the same time: all of them wait for the
// one ZeroMQ subscription's acknowledgement, and all of them get everything after it.
func TestConcurrentFirstSubscribersAllWait(t *testing.T) {
	e := newZMQEnv(t, nil, false)
	const clients, n = 10, 100
	for k := range 5 {
		topic := tempTopic(100 + k)
		cs := make([]*wsClient, clients)
		for i := range cs {
			cs[i] = e.dial()
		}
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.subscribe(topic, nil)
			}()
		}
		wg.Wait()
		for _, c := range cs {
			if f := c.next(); f != topic+`:{"msgtype": "status", "status": ["subscribesuccess", "`+topic+`", "`+idOf(t, f, topic)+`"]}` {
				t.Fatalf("got %q", f)
			}
		}
		for i := range n {
			e.publish(topic, push(i))
		}
		for _, c := range cs {
			for i := range n {
				c.expect(topic + ":" + push(i))
			}
		}
	}
	if st := e.hub.Stats(); st.SubscribeAckTimeouts != 0 || st.ZMQTopics != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// idOf extracts the client id of a subscribesuccess frame (or fails on anything else).
func idOf(t *testing.T, frame, topic string) string {
	t.Helper()
	prefix := topic + `:{"msgtype": "status", "status": ["subscribesuccess", "` + topic + `", "`
	if len(frame) < len(prefix)+4 || frame[:len(prefix)] != prefix {
		t.Fatalf("not a subscribesuccess for %s: %q", topic, frame)
	}
	return frame[len(prefix) : len(frame)-3]
}

// Acknowledgements are never frames, not even the one for bokehplot:abcd, whose request
// topic also matches the socket's subscription to bokehplot:abc (ZeroMQ prefixes).
func TestAckNotSentToClients(t *testing.T) {
	e := newZMQEnv(t, nil, false)
	short := e.dial()
	short.mustSubscribe("bokehplot:abc", "rabc")
	long := e.dial()
	long.mustSubscribe("bokehplot:abcd", "rabcd")
	e.publish("bokehplot:abc", push(1))
	short.expect("bokehplot:abc:" + push(1))
	short.expectEmpty()
	long.expectEmpty()
	if st := e.hub.Stats(); st.ZMQAcks != 2 || st.Unwatched != 0 || st.DroppedMsgtype != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// With no publisher reachable a subscribe is still answered, after the acknowledgement
// timeout; once a publisher comes, the pending request is answered and nobody waits.
func TestSubscribeWithoutPublisher(t *testing.T) {
	addr := brokertest.FreeTCPAddr(t)
	e := newZMQEnv(t, func(c *Config) {
		c.ZMQAddr = addr
		c.SubscribeAckTimeout = 50 * time.Millisecond
	}, false)
	topic := "bokehuser:nobody"
	for i := range 2 {
		c := e.dial()
		c.mustSubscribe(topic, nil)
		if got := e.hub.Stats().SubscribeAckTimeouts; got != uint64(i+1) {
			t.Fatalf("ack timeouts %d, want %d", got, i+1)
		}
	}

	pub, err := broker.NewZMQPublisher(addr, broker.Bind, broker.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	waitFor(t, "the pending request to be answered", func() bool { return e.hub.Stats().ZMQAcks > 0 })
	late := e.dial()
	late.mustSubscribe(topic, nil)
	if got := e.hub.Stats().SubscribeAckTimeouts; got != 2 {
		t.Fatalf("ack timeouts %d after the acknowledgement, want 2", got)
	}
	pub.Publish(broker.Message{Topic: topic, Payload: []byte(`{"msgtype": "docchange"}`)})
	late.expect(topic + `:{"msgtype": "docchange"}`)
}

// A client that joins a topic while messages stream on it gets subscribesuccess first and
// then an unbroken run of the stream up to its end.
func TestJoinWhileStreaming(t *testing.T) {
	e := newZMQEnv(t, nil, false)
	topic := tempTopic(7)
	a := e.dial()
	a.mustSubscribe(topic, nil)
	joiners := make([]*wsClient, 7)
	for i := range joiners {
		joiners[i] = e.dial()
	}
	// Stream in lockstep with a (no queue ever grows); every 100 messages the next joiner
	// subscribes, and the stream goes on while its reply is under way.
	deadline := time.Now().Add(waitLimit)
	var joining *wsClient
	next, i := 0, 0
	for ; next < len(joiners) || joining != nil || i%100 != 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("joiner %d got no reply within %s", next-1, waitLimit)
		}
		if joining == nil && i%100 == 0 && next < len(joiners) {
			joining = joiners[next]
			joining.subscribe(topic, nil)
			next++
		}
		e.publish(topic, push(i))
		a.expect(topic + ":" + push(i))
		if joining != nil {
			select {
			case f := <-joining.frames:
				joining.id = idOf(t, f, topic) // the first frame is the reply
				joining = nil
			default:
			}
		}
	}
	// Every joiner has its reply now, so it gets this one for sure.
	e.publish(topic, push(i))
	a.expect(topic + ":" + push(i))
	end := i + 1
	for j, c := range joiners {
		first := -1
		for first < end {
			f := c.next()
			var k int
			if _, err := fmt.Sscanf(f, topic+`:{"msgtype": "modelpush", "modelspecs": [{"id": "m%d"`, &k); err != nil {
				t.Fatalf("joiner %d: unexpected frame %q", j, f)
			}
			if first >= 0 && k != first {
				t.Fatalf("joiner %d: got message %d, want %d", j, k, first)
			}
			first = k + 1
		}
		c.expectEmpty()
	}
}
