package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker/ratelog"
)

// Subscriber receives messages for an exact set of topics from a SUB socket connected to a
// bokeh-server's PUB socket or a forwarder's output, and hands them to a callback.
//
// One goroutine owns the SUB socket and waits in a select for a sockWatcher (messages
// arriving, see watch.go) and for requests: Subscribe and Unsubscribe queue a request and
// wake it, so changing subscriptions needs no polling timeout and adds no latency to
// delivery, and the goroutine never blocks inside libzmq.
//
// Every new subscription also asks the publisher for an acknowledgement (see ack.go);
// SubscribeAck and SubscribeAndWait let callers wait until messages on the topic flow.
// It follows the chain of every publisher on every subscribed topic (wire.go, loss.go),
// watches its own connection (monitor.go), and reports what it may have missed to the
// loss handler (WithLossHandler).
type Subscriber struct {
	addr    string
	deliver func(Message)
	batch   func([]Message) bool // WithBatchDelivery
	loss    func(Loss)           // WithLossHandler
	pending []Message            // owned by run: messages taken, not yet handed to batch
	log     *slog.Logger

	sock      *zmq.Socket // owned by run
	recv      *partReceiver
	watch     *sockWatcher
	monitor   *connMonitor
	topics    map[string]*subState
	ackWanted map[string]string // request topic → topic
	nonce     uint64            // last request nonce
	chains    *chainFollower
	badLog    ratelog.Limiter
	formatLog ratelog.Limiter
	stopped   chan struct{}

	mu     sync.Mutex // guards ops and closed
	ops    []subOp
	closed bool
	wake   chan struct{} // capacity 1: ops or closed changed

	received   atomic.Uint64
	delivered  atomic.Uint64
	filtered   atomic.Uint64
	malformed  atomic.Uint64
	acks       atomic.Uint64
	heartbeats atomic.Uint64
	hellos     atomic.Uint64
	reconnects atomic.Uint64
}

// subState is one subscribed topic.
type subState struct {
	request  string        // the acknowledgement request topic, subscribed while the topic is
	acked    chan struct{} // closed on the first answer to request
	answered bool
}

type subOp struct {
	topic string
	on    bool
	done  chan subResult
}

type subResult struct {
	acked <-chan struct{}
	err   error
}

// ErrNotAcknowledged is returned (wrapped together with the context's error) by
// SubscribeAndWait when no publisher acknowledged the subscription in time.
var ErrNotAcknowledged = errors.New("broker: subscription not acknowledged by any publisher")

// SubscriberStats counts a subscriber's messages. Filtered are messages whose topic merely
// shares a prefix with a subscribed one (ZeroMQ filters by prefix); Malformed failed to
// parse (or were of another wire format); Acks are acknowledgement frames (never
// delivered), including answers meant for other subscribers of a topic or from other
// publishers; Heartbeats and Hellos likewise; Reconnects counts the socket's new
// connections after the first.
type SubscriberStats struct {
	Received, Delivered, Filtered, Malformed, Acks, Heartbeats, Hellos, Reconnects uint64
}

// NewSubscriber connects a SUB socket to addr. deliver is called from the subscriber's
// goroutine, in arrival order, for every message whose topic is subscribed; it must not
// block and must not call Subscribe or Unsubscribe (they wait for that goroutine).
func NewSubscriber(addr string, deliver func(Message), opts ...Option) (*Subscriber, error) {
	o := buildOptions(opts)
	s := &Subscriber{addr: addr, deliver: deliver, batch: o.batch, loss: o.loss, log: o.log,
		topics: make(map[string]*subState), ackWanted: make(map[string]string),
		nonce: rand.Uint64(), chains: newChainFollower(), stopped: make(chan struct{}),
		wake: make(chan struct{}, 1)}
	if s.loss == nil {
		s.loss = func(Loss) {}
	}
	s.chains.onAmbiguous = func(origin uint64) {
		s.log.Error("zmq: two running publishers share one origin, so their restarts are not recognised: give each its own name (bokeh-server: its host and port)",
			"addr", addr, "origin", fmt.Sprintf("%016x", origin))
	}
	if err := s.open(o); err != nil {
		s.closeSockets()
		return nil, err
	}
	s.watch.start(s.log, "subscriber", addr)
	s.monitor.watch.start(s.log, "subscriber monitor", addr)
	go s.run()
	return s, nil
}

func (s *Subscriber) open(o options) error {
	var err error
	if s.sock, err = newSocket(zmq.SUB, o); err != nil {
		return err
	}
	if _, err = applyCurve(s.sock, o.curve, false); err != nil {
		return err
	}
	// Publishers say hello to every subscriber of HelloTopic (wire.go).
	if err = s.sock.SetSubscribe(HelloTopic); err != nil {
		return fmt.Errorf("zmq subscribe hello: %w", err)
	}
	if s.monitor, err = newConnMonitor(s.sock); err != nil {
		return err
	}
	if err = attach(s.sock, s.addr, Connect, ""); err != nil {
		return err
	}
	s.recv = newPartReceiver(s.sock)
	if s.watch, err = newSockWatcher(s.sock); err != nil {
		return fmt.Errorf("zmq SUB signal descriptor: %w", err)
	}
	return nil
}

func (s *Subscriber) closeSockets() {
	if s.watch != nil {
		s.watch.stop()
	}
	if s.monitor != nil {
		s.monitor.close()
	}
	if s.sock != nil {
		s.sock.SetLinger(0)
		s.sock.Close()
	}
}

// Subscribe starts delivery of topic (exactly that topic, which must be a ValidTopic) and
// returns once the socket has the subscription, which may not have reached the publisher
// yet: see SubscribeAck. Subscribing twice is the same as once.
func (s *Subscriber) Subscribe(topic string) error {
	_, err := s.SubscribeAck(topic)
	return err
}

// SubscribeAck is Subscribe, and also returns a channel that is closed once a publisher
// has acknowledged the subscription: every message that publisher sends on topic from
// then on is delivered, in order (through a forwarder: every message of every publisher
// connected to it), or its loss reported. For a topic subscribed already it returns the
// topic's current channel: closed already if the acknowledgement has come, a new one while
// the subscriber asks anew after a reconnection. Without any publisher it stays open until
// one connects and answers.
func (s *Subscriber) SubscribeAck(topic string) (<-chan struct{}, error) {
	if !ValidTopic(topic) {
		return nil, fmt.Errorf("broker: subscribe: topic %q is not <kind>:<value>", topic)
	}
	r := s.request(topic, true)
	return r.acked, r.err
}

// SubscribeAndWait subscribes and waits for the publisher's acknowledgement (see
// SubscribeAck). When ctx ends first it returns an error that wraps both
// ErrNotAcknowledged and ctx.Err(); the subscription stays in place either way.
func (s *Subscriber) SubscribeAndWait(ctx context.Context, topic string) error {
	acked, err := s.SubscribeAck(topic)
	if err != nil {
		return err
	}
	select {
	case <-acked:
		return nil
	case <-s.stopped:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrNotAcknowledged, topic, ctx.Err())
	}
}

// Unsubscribe stops delivery of topic.
func (s *Subscriber) Unsubscribe(topic string) error { return s.request(topic, false).err }

func (s *Subscriber) request(topic string, on bool) subResult {
	op := subOp{topic: topic, on: on, done: make(chan subResult, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return subResult{err: ErrClosed}
	}
	s.ops = append(s.ops, op)
	s.mu.Unlock()
	s.wakeUp()
	select {
	case r := <-op.done:
		return r
	case <-s.stopped:
		return subResult{err: ErrClosed}
	}
}

// Stats reports the subscriber's counters.
func (s *Subscriber) Stats() SubscriberStats {
	return SubscriberStats{Received: s.received.Load(), Delivered: s.delivered.Load(),
		Filtered: s.filtered.Load(), Malformed: s.malformed.Load(), Acks: s.acks.Load(),
		Heartbeats: s.heartbeats.Load(), Hellos: s.hellos.Load(), Reconnects: s.reconnects.Load()}
}

// Close stops the goroutine and closes the sockets; pending requests fail with ErrClosed.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wakeUp()
	<-s.stopped
	return nil
}

// wakeUp tells run that ops or closed changed.
func (s *Subscriber) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is pending, and run takes all ops on each
	}
}

func (s *Subscriber) run() {
	defer func() {
		s.mu.Lock()
		s.closed = true // also when the loop ends on its own: later requests fail fast
		s.mu.Unlock()
		s.closeSockets()
		close(s.stopped)
	}()
	for {
		select {
		case <-s.watch.ready:
		case <-s.monitor.watch.ready:
			s.receive() // what came before the event belongs to the connection before
			s.monitorEvents()
		case <-s.wake:
			if !s.handleOps() {
				return
			}
		}
		// After any operation, and on every signal, read until EAGAIN (watch.go).
		s.receive()
	}
}

// handleOps applies queued requests; it returns false once the subscriber is closed.
func (s *Subscriber) handleOps() bool {
	s.mu.Lock()
	ops, closed := s.ops, s.closed
	s.ops = nil
	s.mu.Unlock()
	for _, op := range ops {
		if closed {
			op.done <- subResult{err: ErrClosed}
			continue
		}
		op.done <- s.apply(op)
	}
	return !closed
}

func (s *Subscriber) apply(op subOp) subResult {
	st, have := s.topics[op.topic]
	switch {
	case op.on && have:
		return subResult{acked: st.acked}
	case op.on:
		if err := s.sock.SetSubscribe(op.topic); err != nil {
			return subResult{err: fmt.Errorf("zmq subscribe %q: %w", op.topic, err)}
		}
		st = &subState{acked: make(chan struct{})}
		if err := s.ask(op.topic, st); err != nil {
			s.sock.SetUnsubscribe(op.topic)
			return subResult{err: err}
		}
		s.topics[op.topic] = st
		s.chains.follow(op.topic)
		return subResult{acked: st.acked}
	case have:
		if err := s.sock.SetUnsubscribe(op.topic); err != nil {
			return subResult{err: fmt.Errorf("zmq unsubscribe %q: %w", op.topic, err)}
		}
		s.forgetRequest(st)
		delete(s.topics, op.topic)
		s.chains.unfollow(op.topic)
	}
	return subResult{}
}

// ask subscribes a new acknowledgement request for topic, after the topic itself, so that
// whoever answers it has the topic already. A request answered before is withdrawn, and
// its channel replaced: waiters then wait for the new answer.
func (s *Subscriber) ask(topic string, st *subState) error {
	s.nonce++
	request := ackRequestTopic(topic, s.nonce)
	if err := s.sock.SetSubscribe(request); err != nil {
		return fmt.Errorf("zmq subscribe %q: %w", topic, err)
	}
	s.forgetRequest(st)
	if st.answered {
		st.acked, st.answered = make(chan struct{}), false
	}
	st.request = request
	s.ackWanted[request] = topic
	return nil
}

// forgetRequest withdraws a topic's acknowledgement request.
func (s *Subscriber) forgetRequest(st *subState) {
	if st.request == "" {
		return
	}
	delete(s.ackWanted, st.request)
	if err := s.sock.SetUnsubscribe(st.request); err != nil {
		s.log.Debug("zmq unsubscribe acknowledgement request", "addr", s.addr, "err", err)
	}
	st.request = ""
}

// reconnected handles a new connection after a lost one: whatever was published in between
// is gone, so every topic is reported lost and asks for acknowledgements anew (waiters get
// their answer once messages flow on the new connection).
func (s *Subscriber) reconnected(peer string) {
	s.reconnects.Add(1)
	s.flush()
	for topic, st := range s.topics {
		if err := s.ask(topic, st); err != nil {
			s.log.Error("zmq: asking for an acknowledgement after reconnecting", "addr", s.addr, "err", err)
		}
		s.chains.follow(topic)
	}
	s.reportLoss(Loss{Reason: LossReconnect})
	s.log.Warn("zmq subscriber reconnected; what was published meanwhile is lost, so every page is told to reload",
		"addr", s.addr, "peer", peer, "topics", len(s.topics))
}

// reportLoss hands a loss to the handler, after the messages taken before it.
func (s *Subscriber) reportLoss(l Loss) {
	s.flush()
	s.loss(l)
}
