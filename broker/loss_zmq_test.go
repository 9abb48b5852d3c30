package broker

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Loss detection over real sockets: each way a change can go missing between a publisher
// and a subscriber is made to happen, and the subscriber must report it.

// expectLoss checks the next loss reported; topics in any order.
func expectLoss(t *testing.T, c *collector, reason LossReason, topics ...string) {
	t.Helper()
	l := c.nextLoss(t)
	got := slices.Sorted(slices.Values(l.Topics))
	if l.Reason != reason || !slices.Equal(got, slices.Sorted(slices.Values(topics))) {
		t.Fatalf("loss %+v, want %s on %v", l, reason, topics)
	}
}

func TestSubscriberReportsBrokenChains(t *testing.T) {
	raw := newRawPublisher(t, 1)
	const topic = "bokehplot:chain"
	c := newCollector(t, raw.endpoint(), topic)
	c.awaitRoute(t, raw, "raw")
	raw.Publish(Message{Topic: topic, Payload: []byte("one")})
	raw.Publish(Message{Topic: topic, Payload: []byte("two")})
	for _, want := range []string{"one", "two"} {
		if m := c.next(t); string(m.Payload) != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
	}
	c.expectNoLoss(t)

	// A change goes missing: the next one names it.
	raw.number(topic)
	raw.Publish(Message{Topic: topic, Payload: []byte("after a gap")})
	expectLoss(t, c, LossGap, topic)
	if m := c.next(t); string(m.Payload) != "after a gap" {
		t.Fatalf("the change after the gap was not delivered: %q", m.Payload)
	}

	// The last change goes missing: a heartbeat names it.
	seq, _ := raw.number(topic)
	raw.send(t, []byte(topic), raw.header(MsgHeartbeat, 0, seq), nil)
	expectLoss(t, c, LossTail, topic)
	raw.send(t, []byte(topic), raw.header(MsgHeartbeat, 0, seq), nil)
	raw.Publish(Message{Topic: topic, Payload: []byte("in order")})
	if m := c.next(t); string(m.Payload) != "in order" {
		t.Fatalf("got %q", m.Payload)
	}
	c.expectNoLoss(t)
	if st := c.sub.Stats(); st.Heartbeats != 2 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A publisher that comes back with a new epoch may not have sent its last changes: every
// topic it had changed is reported, as soon as it says hello.
func TestSubscriberReportsPublisherRestart(t *testing.T) {
	raw := newRawPublisher(t, 1)
	raw.origin = OriginOf("api.example:5006")
	topics := []string{"bokehplot:r1", "bokehplot:r2"}
	c := newCollector(t, raw.endpoint(), append(topics, "bokehplot:quiet")...)
	c.awaitRoute(t, raw, "raw")
	for _, topic := range topics {
		raw.Publish(Message{Topic: topic, Payload: []byte("x")})
		c.next(t)
	}
	raw.epoch, raw.seq, raw.last = 2, 0, map[string]uint64{}
	raw.send(t, []byte(HelloTopic), raw.header(MsgHello, 0, 0), nil)
	// Every topic with a chain of the old run: the sync topic's probes had one too.
	expectLoss(t, c, LossEpoch, append(topics, c.syncName)...)
	raw.Publish(Message{Topic: topics[0], Payload: []byte("new run")})
	if m := c.next(t); string(m.Payload) != "new run" {
		t.Fatalf("got %q", m.Payload)
	}
	c.expectNoLoss(t)
}

// A dropped change still takes its number, so subscribers see it missing. Here the
// publisher's own queue overflows while the socket is busy.
func TestQueueFullDropIsSeen(t *testing.T) {
	pub := newBoundPublisher(t, WithQueueSize(1))
	const topic = "bokehplot:queue"
	c := newCollector(t, pub.Endpoint())
	if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
		t.Fatal(err)
	}
	pub.Publish(Message{Topic: topic, Payload: []byte("sent")})
	c.next(t)
	// While the socket is busy Publish queues; the socket goroutine holds at most one and
	// the queue one more, so of three at least one is dropped.
	pub.sockMu.Lock()
	for i := range 3 {
		pub.Publish(Message{Topic: topic, Payload: fmt.Appendf(nil, "busy %d", i)})
	}
	pub.sockMu.Unlock()
	for pub.queued.Load() > 0 { // "after" must not meet a full queue too
		time.Sleep(time.Millisecond)
	}
	pub.Publish(Message{Topic: topic, Payload: []byte("after")})
	expectLoss(t, c, LossGap, topic)
	for m := c.next(t); string(m.Payload) != "after"; m = c.next(t) {
		if !strings.HasPrefix(string(m.Payload), "busy ") {
			t.Fatalf("got %q", m.Payload)
		}
	}
	if st := pub.Stats(); st.Dropped == 0 {
		t.Fatalf("publisher stats %+v, want drops", st)
	}
}

// libzmq drops what a peer's high-water mark cannot hold, silently: here the subscriber
// stops reading during a burst of large changes.
func TestHighWaterMarkDropIsSeen(t *testing.T) {
	pub := newBoundPublisher(t, WithHWM(10))
	const topic = "bokehplot:hwm"
	release := make(chan struct{})
	got := make(chan Message, 10000)
	losses := make(chan Loss, 100)
	sub, err := NewSubscriber(pub.Endpoint(), func(m Message) {
		<-release
		got <- m
	}, WithHWM(10), WithLogger(quietLogger()), WithLossHandler(func(l Loss) { losses <- l }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if err := sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", 32<<10))
	const n = 2000 // 64 MB: more than the socket buffers between them hold
	for range n {
		pub.Publish(Message{Topic: topic, Payload: payload})
	}
	close(release)
	select {
	case l := <-losses:
		if l.Reason != LossGap || !slices.Equal(l.Topics, []string{topic}) {
			t.Fatalf("loss %+v, want a gap on %s", l, topic)
		}
	case <-time.After(waitLimit):
		t.Fatalf("no loss reported within %s; %d of %d delivered", waitLimit, len(got), n)
	}
	t.Logf("%d of %d delivered before the loss was reported", len(got), n)
}

// A heartbeat follows a change, so a subscriber that missed the last change learns it
// within about heartbeatFirst; one that missed nothing hears heartbeats and reports nothing.
func TestPublisherSendsHeartbeats(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint())
	if err := c.sub.SubscribeAndWait(waitCtx(t), "bokehplot:hb"); err != nil {
		t.Fatal(err)
	}
	pub.Publish(Message{Topic: "bokehplot:hb", Payload: []byte("x")})
	c.next(t)
	deadline := time.Now().Add(waitLimit)
	for c.sub.Stats().Heartbeats < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("subscriber stats %+v, publisher %+v: want 2 heartbeats", c.sub.Stats(), pub.Stats())
		}
		time.Sleep(probeGap)
	}
	c.expectNoLoss(t)
	if topics, beating := pub.chains.size(); topics != 1 || beating != 1 {
		t.Fatalf("chains: %d topics, %d with heartbeats due", topics, beating)
	}
}

// A subscriber whose connection breaks reports every topic lost once it is connected again,
// and asks for acknowledgements anew: a waiter gets its answer from the new publisher.
func TestSubscriberReportsReconnect(t *testing.T) {
	addr := freeTCPAddr(t)
	first, err := NewZMQPublisher(addr, Bind, WithLogger(quietLogger()), WithOrigin("api:1"))
	if err != nil {
		t.Fatal(err)
	}
	const topic = "bokehplot:again"
	c := newCollector(t, addr)
	if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
		t.Fatal(err)
	}
	first.Publish(Message{Topic: topic, Payload: []byte("before")})
	c.next(t)
	first.Close()

	var second *ZMQPublisher
	for deadline := time.Now().Add(waitLimit); second == nil; time.Sleep(probeGap) {
		if second, err = NewZMQPublisher(addr, Bind, WithLogger(quietLogger()), WithOrigin("api:1")); err != nil && time.Now().After(deadline) {
			t.Fatalf("bind %s again: %v", addr, err)
		}
	}
	t.Cleanup(func() { second.Close() })
	// Reconnection, and the new epoch of the same origin: both reported, in either order.
	reasons := []LossReason{c.nextLoss(t).Reason, c.nextLoss(t).Reason}
	slices.Sort(reasons)
	if !slices.Equal(reasons, []LossReason{LossEpoch, LossReconnect}) {
		t.Fatalf("losses %v, want epoch and reconnect", reasons)
	}
	if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
		t.Fatal(err)
	}
	second.Publish(Message{Topic: topic, Payload: []byte("after")})
	if m := c.next(t); string(m.Payload) != "after" {
		t.Fatalf("got %q", m.Payload)
	}
	if st := c.sub.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v, want 1 reconnect", st)
	}
}

// Behind a forwarder a worker keeps its connection when an API restarts; the restart shows
// as a new epoch of the API's origin, announced by the hello the API sends when the
// forwarder subscribes.
func TestForwarderPublisherRestartIsSeen(t *testing.T) {
	f := startForwarder(t)
	connect := func() *ZMQPublisher {
		pub, err := NewZMQPublisher(f.InputEndpoint(), Connect, WithLogger(quietLogger()), WithOrigin("api:2"))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	pub := connect()
	const topic = "bokehplot:behind"
	c := newCollector(t, f.OutputEndpoint())
	if err := c.sub.SubscribeAndWait(waitCtx(t), topic); err != nil {
		t.Fatal(err)
	}
	pub.Publish(Message{Topic: topic, Payload: []byte("x")})
	c.next(t)
	pub.Close()
	pub = connect()
	t.Cleanup(func() { pub.Close() })
	expectLoss(t, c, LossEpoch, topic, c.syncName) // the sync topic had an acknowledgement
	if st := c.sub.Stats(); st.Reconnects != 0 {
		t.Fatalf("stats %+v: the worker's own connection never broke", st)
	}
}
