package broker

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// Bounds for every wait in these tests: they are generous so that a slow CI machine or
// the race detector never fails a test, and they only bound, never assert, durations.
const (
	waitLimit = 20 * time.Second
	probeGap  = 20 * time.Millisecond
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// collector subscribes to topics and keeps what arrives; sync probes travel on a topic
// of their own so they never mix with the messages under test.
type collector struct {
	sub      *Subscriber
	msgs     chan Message
	probes   chan Message
	syncName string
}

var collectorSeq atomic.Uint64

func newCollector(t testing.TB, addr string, topics ...string) *collector {
	t.Helper()
	c := &collector{msgs: make(chan Message, 200000), probes: make(chan Message, 1024),
		syncName: fmt.Sprintf("sync:%d.", collectorSeq.Add(1))}
	sub, err := NewSubscriber(addr, func(m Message) {
		ch := c.msgs
		if m.Topic == c.syncName {
			ch = c.probes
		}
		select {
		case ch <- m:
		default:
			t.Errorf("collector buffer full, dropped %s", m.Topic)
		}
	}, WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("NewSubscriber(%s): %v", addr, err)
	}
	c.sub = sub
	t.Cleanup(func() { sub.Close() })
	// The sync topic ends in "." so that no collector's topic is a prefix of another's.
	// It is subscribed last: subscriptions travel in order on one path, so once
	// a publisher's probe arrives it has every earlier subscription too.
	for _, topic := range append(topics, c.syncName) {
		if err := sub.Subscribe(topic); err != nil {
			t.Fatalf("Subscribe(%s): %v", topic, err)
		}
	}
	return c
}

// awaitRoute publishes probes through pub until one reaches the collector, which proves
// the collector's subscriptions have reached pub (ZeroMQ drops messages published before).
func (c *collector) awaitRoute(t testing.TB, pub Publisher, name string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		pub.Publish(Message{Topic: c.syncName, Payload: []byte(name)})
		timer := time.NewTimer(probeGap)
	wait:
		for {
			select {
			case m := <-c.probes:
				if string(m.Payload) == name {
					timer.Stop()
					return
				}
			case <-timer.C:
				break wait
			}
		}
	}
	t.Fatalf("no route from publisher %s to %s within %s", name, c.syncName, waitLimit)
}

// next returns the next collected message or fails the test.
func (c *collector) next(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitLimit):
		t.Fatalf("no message within %s", waitLimit)
		return Message{}
	}
}

// expectNone checks that nothing but what was already consumed arrived.
func (c *collector) expectNone(t testing.TB) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("unexpected message %s: %s", m.Topic, m.Payload)
	default:
	}
}

func newBoundPublisher(t testing.TB, opts ...Option) *ZMQPublisher {
	t.Helper()
	pub, err := NewZMQPublisher("tcp://127.0.0.1:*", Bind, append([]Option{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}
