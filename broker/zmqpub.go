package broker

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker/ratelog"
)

// ZMQPublisher publishes messages on a ZeroMQ XPUB socket in the wire format of wire.go:
// it numbers every change into its topic's chain, sends heartbeats after changes
// (heartbeat.go), answers the subscribers' acknowledgement requests (ack.go) and says
// hello to every subscriber of HelloTopic.
//
// ZeroMQ sockets are not goroutine-safe: whoever uses the socket holds sockMu. Publish
// sends the message itself when the socket is free and nothing it queued earlier is still
// waiting; otherwise it enqueues for the socket goroutine, which also answers subscriptions
// (woken by a sockWatcher, see watch.go) and sends heartbeats. Nothing the network does can
// block a caller: sends never wait, Publish never waits for the lock, and a full queue
// drops the message and counts it. A dropped change still takes its number in the topic's
// chain, and so does one that libzmq drops (a peer over its high-water mark), so the
// subscribers notice either.
//
// Sending from the caller keeps pushes prompt under load: the message leaves before the
// HTTP answer does, where a hand-over to the socket goroutine made it leave while the
// client's next request was already coming in (README, Performance).
type ZMQPublisher struct {
	sockMu   sync.Mutex // held by whoever uses sock, subscribed or connected
	sock     *zmq.Socket
	endpoint string
	log      *slog.Logger

	mu     sync.RWMutex // write-held only by Close, so no Publish enqueues after the drain
	closed bool
	queue  chan outgoing
	queued atomic.Int64 // messages enqueued and not yet sent
	quit   chan struct{}
	done   chan struct{}

	watch        *sockWatcher
	releaseCurve func() // forgets the CURVE allow-list (curve.go)

	subscribed bool          // a subscription has arrived
	connected  chan struct{} // closed on the first subscription

	chains *chains
	origin uint64
	epoch  uint64
	header [HeaderSize]byte // scratch for the header frame; under sockMu
	beats  []heartbeat      // scratch for due heartbeats; the socket goroutine's

	published  atomic.Uint64
	dropped    atomic.Uint64
	acks       atomic.Uint64
	heartbeats atomic.Uint64
	dropLog    ratelog.Limiter
	ackLog     ratelog.Limiter
	legacyLog  ratelog.Limiter
}

// outgoing is one queued change.
type outgoing struct {
	topic   string
	payload []byte
}

// sendBatch bounds how many queued messages the socket goroutine sends, and how many
// subscriptions it reads, before it turns to the other, so that neither starves.
const sendBatch = 256

// NewZMQPublisher binds or connects an XPUB socket at addr. A "tcp://host:*" address binds
// a free port; Endpoint reports it.
//
// In Connect mode addr is a forwarder's input. ZeroMQ connects in the background (and
// retries every 100 to 200 ms while the forwarder is not up yet), and what is published
// before the forwarder has subscribed is lost, although workers may already have had their
// subscriptions acknowledged through another API process. So NewZMQPublisher returns only
// once the first subscription has arrived (the forwarder subscribes to everything at
// once), or after DefaultConnectWait (WithConnectWait) with a warning: call it before
// serving requests. (Holding messages until then instead would deliver them late, after
// clients may have loaded newer state.)
func NewZMQPublisher(addr string, mode Mode, opts ...Option) (*ZMQPublisher, error) {
	o := buildOptions(opts)
	p := &ZMQPublisher{
		endpoint:  addr,
		log:       o.log,
		queue:     make(chan outgoing, o.queueSize),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		connected: make(chan struct{}),
		chains:    newChains(),
		origin:    OriginOf(o.origin),
		epoch:     max(rand.Uint64(), 1),
	}
	if err := p.open(addr, mode, o); err != nil {
		p.closeSockets()
		return nil, err
	}
	if mode == Bind {
		p.endpoint = boundEndpoint(p.sock, addr)
	}
	p.log.Debug("zmq publisher", "endpoint", p.endpoint, "mode", mode, "origin", o.origin,
		"epoch", fmt.Sprintf("%016x", p.epoch))
	p.watch.start(p.log, "publisher", p.endpoint)
	go p.run()
	if mode == Connect && o.connectWait > 0 {
		timer := time.NewTimer(o.connectWait)
		defer timer.Stop()
		select {
		case <-p.connected:
		case <-timer.C:
			p.log.Warn("zmq publisher: no subscription from the forwarder yet; going on, it misses what is published before it connects",
				"endpoint", addr, "waited", o.connectWait)
		}
	}
	return p, nil
}

func (p *ZMQPublisher) open(addr string, mode Mode, o options) error {
	var err error
	if p.sock, err = newSocket(zmq.XPUB, o); err != nil {
		return err
	}
	// Verbose: every subscription is shown, not only the first one for a topic, so that
	// a reconnecting subscriber's requests are answered too.
	if err = p.sock.SetXpubVerbose(1); err != nil {
		return fmt.Errorf("zmq socket XPUB options: %w", err)
	}
	if p.releaseCurve, err = applyCurve(p.sock, o.curve, mode == Bind); err != nil {
		return err
	}
	if err = attach(p.sock, addr, mode, "is another bokeh-server running? use --zmqaddr"); err != nil {
		return err
	}
	if p.watch, err = newSockWatcher(p.sock); err != nil {
		return fmt.Errorf("zmq XPUB signal descriptor: %w", err)
	}
	return nil
}

// closeSockets stops the watcher and closes the XPUB socket, with its linger so that
// messages already handed to ZeroMQ still go out.
func (p *ZMQPublisher) closeSockets() {
	if p.watch != nil {
		p.watch.stop()
	}
	if p.sock != nil {
		p.sock.Close()
	}
	if p.releaseCurve != nil {
		p.releaseCurve()
	}
}

// Endpoint is the address the socket is bound or connected to.
func (p *ZMQPublisher) Endpoint() string { return p.endpoint }

// Publish sends m, or enqueues it when the socket is busy, without blocking; it is dropped
// (and counted) when the queue is full, the topic is not <kind>:<value>, or the publisher
// is closed.
func (p *ZMQPublisher) Publish(m Message) {
	if !ValidTopic(m.Topic) {
		p.drop("invalid topic", m.Topic)
		return
	}
	out := outgoing{topic: m.Topic, payload: m.Payload}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.drop("publisher closed", m.Topic)
		return
	}
	// Sent here only when no message waits in the queue, so order is kept: queued counts
	// the messages in the queue or taken from it and not yet sent (raised before one
	// enters, lowered after its send).
	if p.queued.Load() == 0 && p.sockMu.TryLock() {
		if p.queued.Load() == 0 {
			p.send(out)
			p.flush() // this send may have taken the socket's signal (watch.go)
			p.sockMu.Unlock()
			return
		}
		p.sockMu.Unlock()
	}
	p.queued.Add(1)
	select {
	case p.queue <- out:
	default:
		p.queued.Add(-1)
		// The change takes its place in the chain all the same, so that subscribers see
		// the gap it leaves.
		p.chains.change(m.Topic, time.Now())
		p.drop("queue full", m.Topic)
	}
}

func (p *ZMQPublisher) drop(reason, topic string) {
	p.dropped.Add(1)
	if ok, suppressed := p.dropLog.Allow(time.Second); ok {
		p.log.Warn("zmq publish dropped", "reason", reason, "topic", topic,
			"endpoint", p.endpoint, "suppressed", suppressed)
	}
}

// Stats reports messages handed to ZeroMQ, messages dropped before that, and the
// subscription acknowledgements sent.
func (p *ZMQPublisher) Stats() PublishStats {
	return PublishStats{Published: p.published.Load(), Dropped: p.dropped.Load(), Acks: p.acks.Load(),
		Heartbeats: p.heartbeats.Load()}
}

// Close sends what is already queued, then closes the socket; ZeroMQ keeps trying to
// deliver for at most the linger period. Later Publish calls drop.
func (p *ZMQPublisher) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	<-p.done
	return nil
}

func (p *ZMQPublisher) run() {
	defer close(p.done)
	defer p.closeSockets()
	tick := time.NewTicker(heartbeatTick)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			p.sockMu.Lock()
			p.sendHeartbeats(now)
			p.flush()
			p.sockMu.Unlock()
		case out := <-p.queue:
			p.sockMu.Lock()
			p.sendDequeued(out)
			p.flush()
			p.sockMu.Unlock()
		case <-p.watch.ready:
			p.sockMu.Lock()
			p.flush()
			p.sockMu.Unlock()
		case <-p.quit:
			// Close holds no lock now and closed is set, so the queue can only shrink.
			p.sockMu.Lock()
			for p.sendQueued() > 0 {
			}
			p.sockMu.Unlock()
			return
		}
	}
}

// flush answers subscriptions and sends queued messages in turns until neither is left.
// It always ends with a read of the socket until EAGAIN after its last send (watch.go).
// The caller holds sockMu.
func (p *ZMQPublisher) flush() {
	for {
		more := p.serveSubscriptions()
		if p.sendQueued() == 0 && !more {
			return
		}
	}
}

// sendQueued sends up to sendBatch queued messages and returns how many it sent.
func (p *ZMQPublisher) sendQueued() int {
	for n := range sendBatch {
		select {
		case out := <-p.queue:
			p.sendDequeued(out)
		default:
			return n
		}
	}
	return sendBatch
}

func (p *ZMQPublisher) sendDequeued(out outgoing) {
	p.send(out)
	p.queued.Add(-1)
}

func (p *ZMQPublisher) send(out outgoing) {
	seq, prev := p.chains.change(out.topic, time.Now())
	if err := p.sendFrames(stringBytes(out.topic), Header{Kind: MsgChange, Seq: seq, Prev: prev}, out.payload); err != nil {
		p.drop("zmq send: "+err.Error(), out.topic)
		return
	}
	p.published.Add(1)
}

// sendFrames sends one message; h gets the publisher's origin and epoch. The caller holds
// sockMu.
func (p *ZMQPublisher) sendFrames(topic []byte, h Header, payload []byte) error {
	h.Origin, h.Epoch = p.origin, p.epoch
	// DONTWAIT: an XPUB socket normally drops rather than blocks, but never risk stalling
	// the only goroutine that drains the queue.
	if _, err := p.sock.SendBytes(topic, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
		return err
	}
	if _, err := p.sock.SendBytes(h.Append(p.header[:0]), zmq.SNDMORE|zmq.DONTWAIT); err != nil {
		return err
	}
	_, err := p.sock.SendBytes(payload, zmq.DONTWAIT)
	return err
}

// stringBytes views s as bytes for a send, which only reads them (libzmq copies them).
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// sendHeartbeats sends the heartbeats due. The caller holds sockMu.
func (p *ZMQPublisher) sendHeartbeats(now time.Time) {
	p.beats = p.chains.due(p.beats[:0], now, maxHeartbeatsPerTick)
	for _, b := range p.beats {
		if err := p.sendFrames(stringBytes(b.topic), Header{Kind: MsgHeartbeat, Prev: b.last}, nil); err != nil {
			p.logSendFailure("heartbeat", b.topic, err)
			continue
		}
		p.heartbeats.Add(1)
	}
	clear(p.beats)
}

// serveSubscriptions answers what the subscriptions that have arrived ask for: an
// acknowledgement request, a hello, or (a forwarder connecting) everything. Other
// subscriptions and unsubscriptions need nothing from us (the socket has applied them
// already). It reports whether more may be waiting.
func (p *ZMQPublisher) serveSubscriptions() (more bool) {
	// ZMQ_EVENTS first: one call when nothing has arrived (the usual case after a send),
	// where a read that fails costs three. It leaves the socket idle too (watch.go).
	if ev, err := p.sock.GetEvents(); err == nil && ev&zmq.POLLIN == 0 {
		return false
	}
	for range sendBatch {
		frame, err := p.sock.RecvBytes(zmq.DONTWAIT)
		if err != nil {
			if !isAgain(err) {
				if ok, suppressed := p.ackLog.Allow(time.Second); ok {
					p.log.Error("zmq receive subscription failed", "endpoint", p.endpoint,
						"err", err, "suppressed", suppressed)
				}
			}
			return false
		}
		if len(frame) == 0 || frame[0] != 1 {
			continue
		}
		if !p.subscribed {
			p.subscribed = true
			close(p.connected)
		}
		p.serveSubscription(frame[1:])
	}
	return true
}

func (p *ZMQPublisher) serveSubscription(sub []byte) {
	switch {
	case len(sub) == 0:
		// A forwarder subscribes to everything when it connects: after a reconnection,
		// changes sent meanwhile are lost, and heartbeats let the workers know.
		p.sayHello()
		p.chains.beatAll(time.Now())
	case string(sub) == HelloTopic:
		p.sayHello()
	default:
		topic, ok, legacy := ackRequest(sub)
		switch {
		case ok:
			p.sendAck(sub, topic)
		case legacy:
			if ok, suppressed := p.legacyLog.Allow(time.Minute); ok {
				p.log.Error("a ws-worker of wire format 1 subscribed; it cannot read this publisher's messages: run the same bokeh-server release on every machine",
					"endpoint", p.endpoint, "topic", topic, "wire_format", WireVersion, "suppressed", suppressed)
			}
		}
	}
}

// sendAck answers one request with the topic's last change. The socket applied the
// subscription before handing it to us, so everything sent from now on reaches the
// requester.
func (p *ZMQPublisher) sendAck(request []byte, topic string) {
	if err := p.sendFrames(request, Header{Kind: MsgAck, Prev: p.chains.last(topic)}, nil); err != nil {
		p.logSendFailure("subscription acknowledgement", topic, err)
		return
	}
	p.acks.Add(1)
}

func (p *ZMQPublisher) sayHello() {
	if err := p.sendFrames([]byte(HelloTopic), Header{Kind: MsgHello}, nil); err != nil {
		p.logSendFailure("hello", HelloTopic, err)
	}
}

func (p *ZMQPublisher) logSendFailure(what, topic string, err error) {
	if ok, suppressed := p.ackLog.Allow(time.Second); ok {
		p.log.Warn("zmq send failed", "what", what, "topic", topic, "endpoint", p.endpoint,
			"err", err, "suppressed", suppressed)
	}
}
