package broker

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
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
	losses   chan Loss
	syncName string
}

var collectorSeq atomic.Uint64

func newCollector(t testing.TB, addr string, topics ...string) *collector {
	t.Helper()
	return newCollectorWith(t, addr, nil, topics...)
}

// newCollectorWith is newCollector with options for its Subscriber.
func newCollectorWith(t testing.TB, addr string, opts []Option, topics ...string) *collector {
	t.Helper()
	c := &collector{msgs: make(chan Message, 200000), probes: make(chan Message, 1024),
		losses: make(chan Loss, 1024), syncName: fmt.Sprintf("sync:%d.", collectorSeq.Add(1))}
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
	}, append([]Option{WithLogger(quietLogger()), WithLossHandler(func(l Loss) {
		select {
		case c.losses <- l:
		default:
			t.Errorf("collector loss buffer full, dropped %+v", l)
		}
	})}, opts...)...)
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

// expectNoLoss checks that the subscriber reported no loss.
func (c *collector) expectNoLoss(t testing.TB) {
	t.Helper()
	select {
	case l := <-c.losses:
		t.Fatalf("unexpected loss %+v", l)
	default:
	}
}

// nextLoss returns the next loss reported or fails the test.
func (c *collector) nextLoss(t testing.TB) Loss {
	t.Helper()
	select {
	case l := <-c.losses:
		return l
	case <-time.After(waitLimit):
		t.Fatalf("no loss reported within %s", waitLimit)
		return Loss{}
	}
}

// rawPublisher sends hand-made frames from a bound PUB socket, as a publisher of another
// release or a broken one might. Publish numbers changes into chains as ZMQPublisher does.
type rawPublisher struct {
	sock   *zmq.Socket
	origin uint64
	epoch  uint64
	seq    uint64
	last   map[string]uint64
}

func newRawPublisher(t testing.TB, epoch uint64) *rawPublisher {
	t.Helper()
	sock, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	sock.SetLinger(0)
	if err := sock.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	return &rawPublisher{sock: sock, epoch: epoch, last: map[string]uint64{}}
}

func (r *rawPublisher) endpoint() string {
	ep, _ := r.sock.GetLastEndpoint()
	return ep
}

func (r *rawPublisher) send(t testing.TB, parts ...[]byte) {
	t.Helper()
	for i, p := range parts {
		flag := zmq.SNDMORE
		if i == len(parts)-1 {
			flag = 0
		}
		if _, err := r.sock.SendBytes(p, flag); err != nil {
			t.Fatal(err)
		}
	}
}

// header is a header of this publisher.
func (r *rawPublisher) header(kind MsgKind, seq, prev uint64) []byte {
	return Header{Kind: kind, Origin: r.origin, Epoch: r.epoch, Seq: seq, Prev: prev}.Append(nil)
}

// number takes the next seq for a change of topic and returns it with its prev.
func (r *rawPublisher) number(topic string) (seq, prev uint64) {
	r.seq++
	seq, prev = r.seq, r.last[topic]
	r.last[topic] = seq
	return seq, prev
}

func (r *rawPublisher) Publish(m Message) {
	seq, prev := r.number(m.Topic)
	for i, p := range [][]byte{[]byte(m.Topic), r.header(MsgChange, seq, prev), m.Payload} {
		flag := zmq.SNDMORE
		if i == 2 {
			flag = 0
		}
		r.sock.SendBytes(p, flag)
	}
}

func (r *rawPublisher) Stats() PublishStats { return PublishStats{} }
func (r *rawPublisher) Close() error        { return nil }
