package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bokeh-go/bokeh-server/broker/internal/ratelog"
	zmq "github.com/pebbe/zmq4"
)

// Subscriber receives messages for an exact set of topics from a SUB socket connected to a
// bokeh-server's PUB socket or a forwarder's output, and hands them to a callback.
//
// One goroutine owns the SUB socket and blocks in zmq_poll on it and on an inproc wake-up
// socket; Subscribe and Unsubscribe queue a request and wake it, so changing subscriptions
// needs no polling timeout and adds no latency to delivery.
type Subscriber struct {
	addr    string
	deliver func(Message)
	log     *slog.Logger

	sock    *zmq.Socket // owned by run
	wakeRx  *zmq.Socket // owned by run
	topics  map[string]struct{}
	badLog  ratelog.Limiter
	stopped chan struct{}

	mu     sync.Mutex // guards wakeTx, ops and closed
	wakeTx *zmq.Socket
	ops    []subOp
	closed bool

	received  atomic.Uint64
	delivered atomic.Uint64
	filtered  atomic.Uint64
	malformed atomic.Uint64
}

type subOp struct {
	topic string
	on    bool
	done  chan error
}

// SubscriberStats counts a subscriber's messages. Filtered are messages whose topic merely
// shares a prefix with a subscribed one (ZeroMQ filters by prefix); Malformed failed to parse.
type SubscriberStats struct {
	Received, Delivered, Filtered, Malformed uint64
}

// NewSubscriber connects a SUB socket to addr. deliver is called from the subscriber's
// goroutine, in arrival order, for every message whose topic is subscribed; it must not
// block and must not call Subscribe or Unsubscribe (they wait for that goroutine).
func NewSubscriber(addr string, deliver func(Message), opts ...Option) (*Subscriber, error) {
	o := buildOptions(opts)
	s := &Subscriber{addr: addr, deliver: deliver, log: o.log,
		topics: make(map[string]struct{}), stopped: make(chan struct{})}
	if err := s.open(o); err != nil {
		s.closeSockets()
		return nil, err
	}
	go s.run()
	return s, nil
}

func (s *Subscriber) open(o options) error {
	var err error
	if s.sock, err = newSocket(zmq.SUB, o); err != nil {
		return err
	}
	if err = attach(s.sock, s.addr, Connect, ""); err != nil {
		return err
	}
	wake := inprocName("sub-wake")
	if s.wakeRx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fmt.Errorf("zmq wake socket: %w", err)
	}
	if err = s.wakeRx.Bind(wake); err != nil {
		return fmt.Errorf("zmq bind %s: %w", wake, err)
	}
	if s.wakeTx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fmt.Errorf("zmq wake socket: %w", err)
	}
	if err = s.wakeTx.Connect(wake); err != nil {
		return fmt.Errorf("zmq connect %s: %w", wake, err)
	}
	return nil
}

func (s *Subscriber) closeSockets() {
	for _, sock := range []*zmq.Socket{s.sock, s.wakeRx, s.wakeTx} {
		if sock != nil {
			sock.SetLinger(0)
			sock.Close()
		}
	}
}

// Subscribe starts delivery of topic (exactly that topic) and returns once the socket has
// the subscription. Subscribing twice is the same as once.
func (s *Subscriber) Subscribe(topic string) error { return s.request(topic, true) }

// Unsubscribe stops delivery of topic.
func (s *Subscriber) Unsubscribe(topic string) error { return s.request(topic, false) }

func (s *Subscriber) request(topic string, on bool) error {
	op := subOp{topic: topic, on: on, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.ops = append(s.ops, op)
	// EAGAIN means wake-ups are already pending, and the loop takes all ops on each.
	_, err := s.wakeTx.SendBytes(nil, zmq.DONTWAIT)
	s.mu.Unlock()
	if err != nil && !isAgain(err) {
		return fmt.Errorf("subscriber wake-up: %w", err)
	}
	select {
	case err := <-op.done:
		return err
	case <-s.stopped:
		return ErrClosed
	}
}

// Stats reports the subscriber's counters.
func (s *Subscriber) Stats() SubscriberStats {
	return SubscriberStats{Received: s.received.Load(), Delivered: s.delivered.Load(),
		Filtered: s.filtered.Load(), Malformed: s.malformed.Load()}
}

// Close stops the goroutine and closes the sockets; pending requests fail with ErrClosed.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.wakeTx.SendBytes(nil, zmq.DONTWAIT)
	}
	s.mu.Unlock()
	<-s.stopped
	return nil
}

func (s *Subscriber) run() {
	defer func() {
		s.mu.Lock()
		s.closed = true // also when the loop ends on its own: later requests fail fast
		s.closeSockets()
		s.mu.Unlock()
		close(s.stopped)
	}()
	poller := zmq.NewPoller()
	poller.Add(s.sock, zmq.POLLIN)
	poller.Add(s.wakeRx, zmq.POLLIN)
	for {
		polled, err := poller.Poll(-1)
		if err != nil {
			if zmq.AsErrno(err) == zmq.ETERM {
				return
			}
			s.log.Error("zmq poll failed", "addr", s.addr, "err", err)
			time.Sleep(100 * time.Millisecond) // a persistent error must not spin a core
			continue
		}
		for _, p := range polled {
			if p.Socket == s.wakeRx {
				if !s.handleOps() {
					return
				}
			} else {
				s.receive()
			}
		}
	}
}

// handleOps applies queued requests; it returns false once the subscriber is closed.
func (s *Subscriber) handleOps() bool {
	for {
		if _, err := s.wakeRx.RecvBytes(zmq.DONTWAIT); err != nil {
			break
		}
	}
	s.mu.Lock()
	ops, closed := s.ops, s.closed
	s.ops = nil
	s.mu.Unlock()
	for _, op := range ops {
		if closed {
			op.done <- ErrClosed
			continue
		}
		op.done <- s.apply(op)
	}
	return !closed
}

func (s *Subscriber) apply(op subOp) error {
	_, have := s.topics[op.topic]
	switch {
	case op.on && !have:
		if err := s.sock.SetSubscribe(op.topic); err != nil {
			return fmt.Errorf("zmq subscribe %q: %w", op.topic, err)
		}
		s.topics[op.topic] = struct{}{}
	case !op.on && have:
		if err := s.sock.SetUnsubscribe(op.topic); err != nil {
			return fmt.Errorf("zmq unsubscribe %q: %w", op.topic, err)
		}
		delete(s.topics, op.topic)
	}
	return nil
}
