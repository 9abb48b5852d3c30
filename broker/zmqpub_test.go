package broker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

func TestPublishSubscribeOrderAndExactTopic(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint(), "bokehplot:abc")
	c.awaitRoute(t, pub, "pub")

	const n = 1000
	for i := range n {
		pub.Publish(Message{Topic: "bokehplot:abc", Payload: fmt.Appendf(nil, `{"i": %d}`, i)})
		// Shares the prefix, so ZeroMQ lets it through; the subscriber must drop it.
		pub.Publish(Message{Topic: "bokehplot:abcd", Payload: []byte("other doc")})
	}
	pub.Publish(Message{Topic: "bokehplot:abc", Payload: []byte("end")})
	for i := range n {
		m := c.next(t)
		if want := fmt.Sprintf(`{"i": %d}`, i); m.Topic != "bokehplot:abc" || string(m.Payload) != want {
			t.Fatalf("message %d: got %s %q, want %s", i, m.Topic, m.Payload, want)
		}
	}
	if m := c.next(t); string(m.Payload) != "end" {
		t.Fatalf("got %q, want end", m.Payload)
	}
	c.expectNone(t)
	if st := c.sub.Stats(); st.Filtered != n || st.Malformed != 0 {
		t.Fatalf("subscriber stats %+v, want %d filtered", st, n)
	}
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint(), "bokehuser:a")
	c.awaitRoute(t, pub, "pub")
	pub.Publish(Message{Topic: "bokehuser:a", Payload: []byte("before")})
	if m := c.next(t); string(m.Payload) != "before" {
		t.Fatalf("got %q", m.Payload)
	}
	if err := c.sub.Unsubscribe("bokehuser:a"); err != nil {
		t.Fatal(err)
	}
	pub.Publish(Message{Topic: "bokehuser:a", Payload: []byte("after")})
	c.awaitRoute(t, pub, "pub2") // the probe follows "after" on the same path
	c.expectNone(t)
}

func TestPublishNeverBlocks(t *testing.T) {
	for _, withSlowPeer := range []bool{false, true} {
		t.Run(fmt.Sprintf("slowPeer=%v", withSlowPeer), func(t *testing.T) {
			pub, err := NewZMQPublisher("tcp://127.0.0.1:*", Bind, WithLogger(quietLogger()), WithHWM(100))
			if err != nil {
				t.Fatal(err)
			}
			if withSlowPeer {
				// A subscriber that takes everything and never reads.
				sock, err := zmq.NewSocket(zmq.SUB)
				if err != nil {
					t.Fatal(err)
				}
				defer sock.Close()
				sock.SetLinger(0)
				sock.SetRcvhwm(10)
				sock.SetSubscribe("")
				if err := sock.Connect(pub.Endpoint()); err != nil {
					t.Fatal(err)
				}
			}
			const n = 100000
			payload := []byte(strings.Repeat("x", 1024))
			for i := range n {
				pub.Publish(Message{Topic: PlotTopic(fmt.Sprint(i % 7)), Payload: payload})
			}
			pub.Close()
			st := pub.Stats()
			if st.Published+st.Dropped != n {
				t.Fatalf("stats %+v do not add up to %d", st, n)
			}
			t.Logf("stats %+v", st)
			pub.Publish(Message{Topic: "bokehplot:late", Payload: payload})
			if got := pub.Stats().Dropped; got != st.Dropped+1 {
				t.Fatalf("publish after close: dropped %d, want %d", got, st.Dropped+1)
			}
		})
	}
}

func TestQueueFullDrops(t *testing.T) {
	pub := newBoundPublisher(t, WithQueueSize(1))
	const n = 10000
	for range n {
		pub.Publish(Message{Topic: "bokehplot:q", Payload: []byte("x")})
	}
	pub.Close()
	if st := pub.Stats(); st.Published+st.Dropped != n {
		t.Fatalf("stats %+v do not add up to %d", st, n)
	}
}

func TestPublishRejectsInvalidTopic(t *testing.T) {
	pub := newBoundPublisher(t)
	pub.Publish(Message{Topic: "a:b:c", Payload: []byte("x")})
	pub.Publish(Message{Topic: "nocolon", Payload: []byte("x")})
	if st := pub.Stats(); st.Dropped != 2 {
		t.Fatalf("stats %+v, want 2 dropped", st)
	}
}

func TestBindInUse(t *testing.T) {
	pub := newBoundPublisher(t)
	_, err := NewZMQPublisher(pub.Endpoint(), Bind, WithLogger(quietLogger()))
	if err == nil {
		t.Fatal("second bind succeeded")
	}
	want := "zmq bind " + pub.Endpoint() + ": address already in use — is another bokeh-server running? use --zmqaddr"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestSubscriberCountsMalformed(t *testing.T) {
	raw := newRawPublisher(t, 1)
	c := newCollector(t, raw.endpoint(), "bokehplot:m")
	c.awaitRoute(t, raw, "raw")

	header := Header{Kind: MsgChange, Epoch: 1, Seq: 1}.Append(nil)
	bad := [][][]byte{
		{[]byte("bokehplot:m")},                                                                // one frame
		{[]byte("bokehplot:m"), header},                                                        // two frames
		{[]byte("bokehplot:m"), header, []byte("x"), nil},                                      // four frames
		{[]byte("bokehplot:m"), header[:10], []byte("x")},                                      // short header
		{[]byte("bokehplot:m"), []byte("not a header"), nil},                                   // another format
		{[]byte("bokehplot:m"), []byte(`{"topic": "bokehplot:m", "msg": "x", "exclude": []}`)}, // version 1
	}
	for _, parts := range bad {
		raw.send(t, parts...)
	}
	raw.Publish(Message{Topic: "bokehplot:m", Payload: []byte("good")})
	if m := c.next(t); string(m.Payload) != "good" {
		t.Fatalf("got %q", m.Payload)
	}
	if st := c.sub.Stats(); st.Malformed != uint64(len(bad)) {
		t.Fatalf("stats %+v, want %d malformed", st, len(bad))
	}
	c.expectNoLoss(t)
}

func TestSubscriberClose(t *testing.T) {
	pub := newBoundPublisher(t)
	sub, err := NewSubscriber(pub.Endpoint(), func(Message) {}, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe("bokehplot:x"); err != ErrClosed {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// Publish sends from the caller when the socket is free and queues otherwise (here: while
// the test holds the socket); one publisher's messages must arrive in order either way,
// also right after the socket is released, while the queue is still draining.
func TestPublishKeepsOrderAcrossDirectAndQueuedSends(t *testing.T) {
	pub := newBoundPublisher(t)
	c := newCollector(t, pub.Endpoint(), "bokehplot:order")
	c.awaitRoute(t, pub, "pub")

	const blocks, per = 40, 60 // 3,000: below the high-water marks (libzmq drops silently)
	seq, direct := 0, 0
	publish := func() {
		pub.Publish(Message{Topic: "bokehplot:order", Payload: fmt.Appendf(nil, "%d", seq)})
		seq++
	}
	for b := range blocks {
		if b%2 == 0 {
			pub.sockMu.Lock() // everything queues behind the socket goroutine
			for range per {
				publish()
			}
			pub.sockMu.Unlock()
			continue
		}
		for range per { // while the socket goroutine drains: these must queue behind
			publish()
		}
		for deadline := time.Now().Add(waitLimit); pub.queued.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // the socket goroutine drains the last block
		}
		for range per {
			before := pub.queued.Load()
			publish()
			if before == 0 && pub.queued.Load() == 0 {
				direct++
			}
		}
	}
	if direct == 0 {
		t.Fatal("no message was sent from the caller")
	}
	for i := range seq {
		if m := c.next(t); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.Payload)
		}
	}
	if st := pub.Stats(); st.Dropped != 0 {
		t.Fatalf("stats %+v: dropped", st)
	}
	t.Logf("%d messages, %d sent from the caller", seq, direct)
}

// A subscription that arrives while every message goes out from the caller is still
// acknowledged: the caller answers what its send may have taken the signal of (watch.go).
func TestDirectSendsServeSubscriptions(t *testing.T) {
	pub := newBoundPublisher(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				pub.Publish(Message{Topic: "bokehplot:stream", Payload: []byte("x")})
			}
		}
	}()
	defer func() { close(stop); <-done }()
	sub, err := NewSubscriber(pub.Endpoint(), func(Message) {}, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		err := sub.SubscribeAndWait(ctx, PlotTopic(fmt.Sprint("t", i)))
		cancel()
		if err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
}

// Close while several goroutines publish: every message is either handed to ZeroMQ or
// counted as dropped, and nothing touches the socket after Close has closed it (the race
// detector and libzmq would complain).
func TestCloseWhilePublishing(t *testing.T) {
	pub, err := NewZMQPublisher("tcp://127.0.0.1:*", Bind, WithLogger(quietLogger()), WithQueueSize(64))
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, pub.Endpoint(), "bokehplot:close")
	c.awaitRoute(t, pub, "pub")
	const publishers, each = 4, 2000
	start := make(chan struct{})
	done := make(chan struct{})
	for range publishers {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			for range each {
				pub.Publish(Message{Topic: "bokehplot:close", Payload: []byte("x")})
			}
		}()
	}
	close(start)
	time.Sleep(time.Millisecond)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	for range publishers {
		<-done
	}
	st := pub.Stats()
	// The route probe was published too.
	if got := st.Published + st.Dropped; got < publishers*each || got > publishers*each+100 {
		t.Fatalf("stats %+v: %d messages accounted for, want %d plus probes", st, got, publishers*each)
	}
	if pub.queued.Load() != 0 {
		t.Fatalf("%d messages still counted as queued after Close", pub.queued.Load())
	}
}

// A closed Subscriber gives back its sockets' descriptors (libzmq reaps closed sockets in
// the background): closing its monitor and socket in the wrong order leaked three per
// subscriber, and a worker opens one subscriber for its life but tests open hundreds.
func TestClosedSubscribersAreReaped(t *testing.T) {
	pub := newBoundPublisher(t)
	openFiles := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(fds)
	}
	before := openFiles()
	const n = 200
	for i := range n {
		sub, err := NewSubscriber(pub.Endpoint(), func(Message) {}, WithLogger(quietLogger()))
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		sub.Close()
	}
	deadline := time.Now().Add(waitLimit)
	for openFiles() > before+n/10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open after closing %d subscribers, %d before", openFiles(), n, before)
		}
		time.Sleep(probeGap)
	}
}
