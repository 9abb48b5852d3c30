package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// expectSeries checks that c's next n messages are topic's payloads "<tag> 0" … "<tag> n-1".
func (c *collector) expectSeries(t testing.TB, topic, tag string, n int) {
	t.Helper()
	for i := range n {
		m := c.next(t)
		if want := fmt.Sprintf("%s %d", tag, i); m.Topic != topic || string(m.Payload) != want {
			t.Fatalf("message %d: got %s %q, want %s %q", i, m.Topic, m.Payload, topic, want)
		}
	}
}

func publishSeries(pub Publisher, topic, tag string, n int) {
	for i := range n {
		pub.Publish(Message{Topic: topic, Payload: fmt.Appendf(nil, "%s %d", tag, i)})
	}
}

// Once SubscribeAndWait returns, the very first message published after it arrives. Without
// the acknowledgement the first messages of a fresh topic are lost now and then; 50 fresh
// topics make that show.
func TestSubscribeAndWaitThenPublish(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint())
	const topics, n = 50, 1000
	for k := range topics {
		topic := fmt.Sprintf("bokehplot:fresh%d", k)
		if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
			t.Fatalf("SubscribeAndWait(%s): %v", topic, err)
		}
		publishSeries(pub, topic, "m", n)
		c.expectSeries(t, topic, "m", n)
	}
	c.expectNone(t)
	if st := pub.Stats(); st.Acks < topics || st.Dropped != 0 {
		t.Fatalf("publisher stats %+v, want at least %d acks", st, topics)
	}
	if st := c.sub.Stats(); st.Malformed != 0 || st.Filtered != 0 || st.Delivered != topics*n {
		t.Fatalf("subscriber stats %+v", st)
	}
}

// Unsubscribing and subscribing a topic again asks anew: an answer to the old request that
// is still in flight must not count for the new subscription.
func TestResubscribeWaitsForNewAck(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint())
	const topic, rounds, n = "bokehuser:again", 30, 100
	for r := range rounds {
		if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
			t.Fatal(err)
		}
		tag := fmt.Sprint("round", r)
		publishSeries(pub, topic, tag, n)
		c.expectSeries(t, topic, tag, n)
		if err := c.sub.Unsubscribe(topic); err != nil {
			t.Fatal(err)
		}
	}
	c.expectNone(t)
}

func TestSubscribeAckIsIdempotent(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint())
	first, err := c.sub.SubscribeAck("bokehplot:same")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.sub.SubscribeAck("bokehplot:same")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatal("a second subscription of a pending topic got a channel of its own")
	}
	select {
	case <-first:
	case <-time.After(waitLimit):
		t.Fatalf("no acknowledgement within %s", waitLimit)
	}
	// Re-subscribing an acknowledged topic makes no new request: same, closed channel.
	third, err := c.sub.SubscribeAck("bokehplot:same")
	if err != nil {
		t.Fatal(err)
	}
	if third != first {
		t.Fatal("re-subscribing an acknowledged topic asked again")
	}
	if err := c.sub.SubscribeAndWait(waitCtx(t), "bokehplot:same"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sub.SubscribeAck("bokehplot:a\x00b"); err == nil {
		t.Fatal("subscribed to a topic with a NUL byte")
	}
}

// ZeroMQ matches byte prefixes: the answer to a subscriber of bokehplot:abcd also reaches
// a subscriber of bokehplot:abc, which must neither deliver it nor take it as its own.
func TestAckNeverDelivered(t *testing.T) {
	pub := newBoundPublisher(t)
	short := newCollector(t, pub.Endpoint())
	if err := short.sub.SubscribeAndWait(waitCtx(t), "bokehplot:abc"); err != nil {
		t.Fatal(err)
	}
	before := short.sub.Stats().Acks
	long := newCollector(t, pub.Endpoint())
	if err := long.sub.SubscribeAndWait(waitCtx(t), "bokehplot:abcd"); err != nil {
		t.Fatal(err)
	}
	pub.Publish(Message{Topic: "bokehplot:abc", Payload: []byte("after")})
	if m := short.next(t); string(m.Payload) != "after" {
		t.Fatalf("got %+v, want the message", m)
	}
	short.expectNone(t)
	long.expectNone(t)
	st := short.sub.Stats()
	if st.Acks <= before || st.Delivered != 1 || st.Filtered != 0 || st.Malformed != 0 {
		t.Fatalf("stats of the bokehplot:abc subscriber %+v (acks before %d)", st, before)
	}
}

func TestSubscribeAndWaitWithoutPublisher(t *testing.T) {
	addr := freeTCPAddr(t)
	c := newCollector(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.sub.SubscribeAndWait(ctx, "bokehplot:lonely")
	if !errors.Is(err, ErrNotAcknowledged) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrNotAcknowledged and DeadlineExceeded", err)
	}
	// The request stays pending and is answered by a publisher that comes later.
	pub, err := NewZMQPublisher(addr, Bind, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	if err := c.sub.SubscribeAndWait(waitCtx(t), "bokehplot:lonely"); err != nil {
		t.Fatal(err)
	}
	publishSeries(pub, "bokehplot:lonely", "late", 10)
	c.expectSeries(t, "bokehplot:lonely", "late", 10)
}

// Through a forwarder with two publishers: each of two subscribers waits for its own
// acknowledgement of the same topic, one after the other; then every message of both
// publishers arrives, in each publisher's order.
func TestForwarderAckCoversEveryPublisher(t *testing.T) {
	f := startForwarder(t)
	var pubs []*ZMQPublisher
	for range 2 {
		pub, err := NewZMQPublisher(f.InputEndpoint(), Connect, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		pubs = append(pubs, pub)
	}
	subs := []*collector{newCollector(t, f.OutputEndpoint()), newCollector(t, f.OutputEndpoint())}
	// The guarantee covers publishers connected to the forwarder: wait for both.
	for i, pub := range pubs {
		subs[0].awaitRoute(t, pub, fmt.Sprint("pub", i))
	}

	const topics, n = 10, 1000
	for k := range topics {
		topic := fmt.Sprintf("bokehplot:fwd%d", k)
		for i, c := range subs {
			if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
				t.Fatalf("subscriber %d: SubscribeAndWait(%s): %v", i, topic, err)
			}
		}
		for p, pub := range pubs {
			publishSeries(pub, topic, fmt.Sprint("p", p), n)
		}
		for i, c := range subs {
			next := make([]int, len(pubs))
			for range len(pubs) * n {
				m := c.next(t)
				var p, j int
				if _, err := fmt.Sscanf(string(m.Payload), "p%d %d", &p, &j); err != nil || m.Topic != topic || p >= len(pubs) {
					t.Fatalf("subscriber %d: unexpected message %s %q", i, m.Topic, m.Payload)
				}
				if j != next[p] {
					t.Fatalf("subscriber %d, %s: got message %d of publisher %d, want %d", i, topic, j, p, next[p])
				}
				next[p]++
			}
			c.expectNone(t)
		}
	}
	for i, c := range subs {
		if st := c.sub.Stats(); st.Malformed != 0 || st.Filtered != 0 {
			t.Fatalf("subscriber %d stats %+v", i, st)
		}
	}
}

// In Connect mode NewZMQPublisher returns once the forwarder has subscribed, so that the
// very first message reaches it.
func TestConnectWaitsForForwarder(t *testing.T) {
	in := freeTCPAddr(t)
	type result struct {
		pub *ZMQPublisher
		err error
	}
	created := make(chan result, 1)
	go func() {
		pub, err := NewZMQPublisher(in, Connect, WithLogger(quietLogger()), WithConnectWait(waitLimit))
		created <- result{pub, err}
	}()

	// A forwarder's input, started late. Like the forwarder's proxy it sits in a receive,
	// which is when ZeroMQ attaches the connection and sends it the subscription.
	xsub, err := zmq.NewSocket(zmq.XSUB)
	if err != nil {
		t.Fatal(err)
	}
	defer xsub.Close()
	xsub.SetLinger(0)
	xsub.SetRcvtimeo(waitLimit)
	if err := xsub.Bind(in); err != nil {
		t.Fatal(err)
	}
	if _, err := xsub.SendBytes([]byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	const n = 100
	received := make(chan error, 1)
	go func() { // the only user of xsub from here on
		for i := 0; i < n; {
			parts, err := xsub.RecvMessageBytes(0)
			if err != nil {
				received <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			h, err := ParseHeader(parts[1])
			if err == nil && h.Kind != MsgChange {
				continue // the hello its subscription to everything asks for, heartbeats
			}
			if want := fmt.Sprintf("m %d", i); err != nil || len(parts) != 3 || string(parts[2]) != want {
				received <- fmt.Errorf("message %d: got %q (%+v, %v), want %q", i, parts, h, err, want)
				return
			}
			i++
		}
		received <- nil
	}()

	r := <-created
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.pub.Close() })
	publishSeries(r.pub, "bokehplot:first", "m", n)
	if err := <-received; err != nil {
		t.Fatal(err)
	}
}

// Without any forwarder NewZMQPublisher gives up waiting and publishing works as before.
func TestConnectWaitEnds(t *testing.T) {
	pub, err := NewZMQPublisher(freeTCPAddr(t), Connect, WithLogger(quietLogger()), WithConnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publishSeries(pub, "bokehplot:nobody", "x", 10)
	pub.Close()
	if st := pub.Stats(); st.Published != 10 {
		t.Fatalf("stats %+v, want 10 published", st)
	}
}

// The socket goroutines never block inside libzmq (watch.go): with Go 1.26.8 a stop-the-world
// that starts while a goroutine enters a blocking cgo call waits for that call to return.
// Each round leaves the subscriber and publisher idle right when ReadMemStats stops the
// world; with a blocking zmq_poll this hung within a few rounds.
func TestIdleSocketsDoNotBlockStopTheWorld(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint())
	if err := c.sub.SubscribeAndWait(waitCtx(t), "bokehplot:stw"); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		pub.Publish(Message{Topic: "bokehplot:stw", Payload: []byte("x")})
		c.next(t)
		stopped := make(chan struct{})
		go func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(waitLimit):
			t.Fatalf("round %d: stopping the world took over %s", i, waitLimit)
		}
	}
}
