package wshub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/broker/ratelog"
)

// Subscriber is what the hub needs of its ZeroMQ subscriber (broker.Subscriber): unit
// tests give it an in-memory one (brokertest.Subscriber, Config.NewSubscriber).
type Subscriber interface {
	SubscribeAck(topic string) (<-chan struct{}, error)
	Unsubscribe(topic string) error
	Stats() broker.SubscriberStats
	Close() error
}

// Hub is the topic→connections table of one worker, fed by its own ZeroMQ subscriber.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	sub      Subscriber
	keys     *keyLookup
	poller   *poller
	pollDone chan struct{} // closed when the poller's goroutine has ended
	failed   chan error    // the poller's error, if it stopped on its own (Failed)
	registry *prometheus.Registry
	ctx      context.Context // cancelled by Shutdown: aborts pending key lookups
	cancel   context.CancelFunc
	conns    sync.WaitGroup // client goroutines
	// handshakes counts upgrades under way; Add only under mu while not draining, so that
	// Shutdown can wait for connections that were accepted but not registered yet.
	handshakes sync.WaitGroup

	mu       sync.RWMutex
	topics   map[string]*subscribers // dispatch iterates without the lock (subscribers.go)
	joining  map[string]int          // clients waiting for a topic's acknowledgement
	clients  map[*client]struct{}
	draining bool
	// upgrading counts handshakes under way, which hold a file each like a connection.
	upgrading int

	// held keeps the ZeroMQ subscriptions of resynced topics for a while (resync.go);
	// guarded by mu.
	held map[string]time.Time

	// subMu serialises changes of the ZeroMQ subscriptions so that concurrent first
	// subscribe / last unsubscribe of a topic always leave the socket matching the table.
	subMu     sync.Mutex
	zmqTopics map[string]bool

	slots     atomic.Uint32 // hands out ping slots
	counters  counters
	direct    *directWriter // dispatch's, for direct writes
	apiErrLog ratelog.Limiter
	ackLog    ratelog.Limiter
	resyncLog ratelog.Limiter
	fullLog   ratelog.Limiter
}

// New connects the hub's ZeroMQ subscriber; serve Handler to accept websockets.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, topics: make(map[string]*subscribers), direct: newDirectWriter(),
		joining: make(map[string]int), clients: make(map[*client]struct{}), held: make(map[string]time.Time),
		zmqTopics: make(map[string]bool)}
	h.keys = newKeyLookup(cfg.APIURL, cfg.SecretKey, cfg.HTTPClient)
	if h.poller, err = newPoller(); err != nil {
		return nil, fmt.Errorf("wshub: %w", err)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if cfg.NewSubscriber != nil {
		h.sub, err = cfg.NewSubscriber(h.dispatchBatch, h.resync)
	} else {
		h.sub, err = broker.NewSubscriber(cfg.ZMQAddr, nil, broker.WithLogger(cfg.Logger),
			broker.WithBatchDelivery(h.dispatchBatch), broker.WithLossHandler(h.resync),
			broker.WithHWM(cfg.HWM), broker.WithCurve(cfg.Curve))
	}
	if err != nil {
		h.cancel()
		h.pollDone = make(chan struct{})
		close(h.pollDone)
		h.poller.stop(h.pollDone)
		return nil, fmt.Errorf("wshub: %w", err)
	}
	h.registry = h.newRegistry()
	h.pollDone, h.failed = make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(h.pollDone)
		if err := h.poller.run(); err != nil {
			h.failed <- fmt.Errorf("reading websockets stopped: %w", err)
		}
	}()
	go h.pinger()
	return h, nil
}

// Failed delivers an error if the hub can no longer read its connections. It cannot mend
// that: the program should shut the hub down and exit, so that its supervisor restarts it
// and the pages reconnect elsewhere meanwhile.
func (h *Hub) Failed() <-chan error { return h.failed }

// pingSlots is how many parts of PingInterval the pings are spread over (fewer, for
// intervals under that many milliseconds).
const pingSlots = 64

func (h *Hub) pingSlots() int {
	return int(min(max(h.cfg.PingInterval/time.Millisecond, 1), pingSlots))
}

// pinger asks every connection for a ping once per PingInterval, a slot's worth at a time,
// until Shutdown: one goroutine and ticker for the whole worker instead of a timer each.
// A connection that sent nothing for the read timeout is closed instead. It also releases
// the subscriptions resyncs held (resync.go).
func (h *Hub) pinger() {
	slots := h.pingSlots()
	tick := time.NewTicker(h.cfg.PingInterval / time.Duration(slots))
	defer tick.Stop()
	var slot uint8
	var due []*client
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
		slot = uint8((int(slot) + 1) % slots)
		h.releaseHeld(time.Now())
		h.mu.RLock()
		for c := range h.clients {
			if c.slot == slot {
				due = append(due, c)
			}
		}
		h.mu.RUnlock()
		now := time.Now()
		for _, c := range due {
			if !c.readTimedOut(now) {
				c.pingTime()
			}
		}
		clear(due)
		due = due[:0]
	}
}

// register adds an accepted connection; false once the hub is draining.
func (h *Hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.clients[c] = struct{}{}
	h.counters.connections.Add(1)
	h.counters.connectionsTotal.Add(1)
	return true
}

// subscribe adds c to topic's subscribers and queues the success reply. A first
// subscription of topic on this worker waits until the publisher has acknowledged the
// ZeroMQ subscription, so that every message published after the client got the reply
// reaches it; without an acknowledgement within SubscribeAckTimeout (no publisher
// reachable) it logs, counts and replies anyway, on a best effort basis.
//
// c joins the fan-out table and gets the reply in one critical section: every message
// dispatched to it comes after subscribesuccess, as in the original, and every message
// published after the client has seen subscribesuccess is dispatched to it.
func (h *Hub) subscribe(ctx context.Context, c *client, topic string) error {
	h.mu.Lock()
	if slices.Contains(c.topics, topic) {
		h.mu.Unlock()
		c.reply(successFrame(topic, c.id))
		return nil
	}
	if len(c.topics) >= MaxTopicsPerClient {
		h.mu.Unlock()
		return errTooMany
	}
	h.joining[topic]++
	h.mu.Unlock()

	acked, err := h.syncTopic(topic)
	if err == nil {
		h.awaitAck(ctx, topic, acked)
	}

	h.mu.Lock()
	if h.joining[topic]--; h.joining[topic] == 0 {
		delete(h.joining, topic)
	}
	if err == nil {
		c.topics = append(c.topics, topic)
		subs := h.topics[topic]
		if subs == nil {
			subs = &subscribers{}
			h.topics[topic] = subs
		}
		subs.add(c)
		h.counters.subscriptions.Add(1)
		c.reply(successFrame(topic, c.id))
	}
	h.mu.Unlock()
	if err != nil {
		h.syncTopic(topic) // let go of a subscription nobody else wants
	}
	return err
}

// awaitAck waits for the acknowledgement of topic, for at most SubscribeAckTimeout and
// only while ctx (the subscribing connection) lasts. It runs without any lock held.
func (h *Hub) awaitAck(ctx context.Context, topic string, acked <-chan struct{}) {
	select {
	case <-acked:
		return
	default:
	}
	timeout := h.cfg.SubscribeAckTimeout
	if timeout <= 0 {
		return
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-acked:
	case <-ctx.Done():
	case <-timer.C:
		h.counters.ackTimeouts.Add(1)
		if ok, suppressed := h.ackLog.Allow(time.Second); ok {
			h.log.Warn("no publisher acknowledged the subscription; answering subscribesuccess anyway",
				"topic", topic, "waited", timeout, "zmqaddr", h.cfg.ZMQAddr, "suppressed", suppressed)
		}
	}
}

// unregister forgets a closed connection and its subscriptions (the original kept stale
// entries, §8 item 13).
func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	topics := c.topics
	c.topics = nil
	c.gone.Store(true)
	for _, topic := range topics {
		subs := h.topics[topic]
		if subs == nil {
			continue
		}
		subs.drop()
		if subs.live() == 0 {
			delete(h.topics, topic)
		}
	}
	h.counters.connections.Add(-1)
	h.counters.subscriptions.Add(-int64(len(topics)))
	h.mu.Unlock()
	for _, topic := range topics {
		if _, err := h.syncTopic(topic); err != nil {
			h.log.Debug("zmq unsubscribe", "topic", topic, "err", err)
		}
	}
}

// syncTopic makes the ZeroMQ subscription of topic match whether any client watches it, is
// joining it, or a resync holds it (resync.go). While one does, it returns the channel
// closed by the subscription's current acknowledgement (the same one for every client of
// the topic, a new one while the subscriber asks anew after a reconnection). It must not be
// called from dispatch, which runs on the subscriber's goroutine.
func (h *Hub) syncTopic(topic string) (<-chan struct{}, error) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.RLock()
	_, held := h.held[topic]
	want := h.topics[topic] != nil || h.joining[topic] > 0 || held
	h.mu.RUnlock()
	switch {
	case want:
		acked, err := h.sub.SubscribeAck(topic)
		if err != nil {
			return nil, err
		}
		h.zmqTopics[topic] = true
		return acked, nil
	case h.zmqTopics[topic]:
		delete(h.zmqTopics, topic)
		return nil, h.sub.Unsubscribe(topic)
	}
	return nil, nil
}

// backlogBytes is the send queue beyond which a connection makes dispatch report a backlog
// (see broker.WithBatchDelivery), so that its writer gets to run before more is taken.
const backlogBytes = 256 << 10

// dispatchBatch fans out the messages the subscriber took in one go, in order. It runs on
// the subscriber's goroutine and never blocks: each frame and its websocket encoding are
// built once, then written without waiting or queued per connection (see deliver); a
// connection gets all its frames of a run of messages on one topic in one write.
// It reports whether a connection's writer has a backlog.
func (h *Hub) dispatchBatch(msgs []broker.Message) (backlog bool) {
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].Topic == msgs[i].Topic {
			j++
		}
		if h.dispatchRun(msgs[i:j]) {
			backlog = true
		}
		i = j
	}
	return backlog
}

// dispatchRun fans out consecutive messages on one topic.
func (h *Hub) dispatchRun(msgs []broker.Message) (backlog bool) {
	topic := msgs[0].Topic
	h.mu.RLock()
	var clients []*client
	if subs := h.topics[topic]; subs != nil {
		clients = subs.all
	}
	h.mu.RUnlock()
	if len(clients) == 0 {
		h.counters.unwatched.Add(uint64(len(msgs)))
		return false
	}
	plot := false
	if kind, _ := topicKind(topic); kind == broker.KindPlot {
		plot = true
	}
	frames := make([]outFrame, 0, len(msgs))
	for _, m := range msgs {
		if plot && !deliverableOnPlot(m.Payload) {
			h.counters.droppedMsgtype.Add(1)
			h.log.Debug("dropped frame BokehJS cannot handle", "topic", m.Topic, "size", len(m.Payload))
			continue
		}
		// The frame is topic:payload. One recipient gets the payload as it came from
		// ZeroMQ, after a head (header, topic, colon) of its own, without a copy. For
		// several, the frame is encoded once into one buffer they share, so that each of
		// their writes takes one iovec per frame.
		head := frameHead(m.Topic, len(m.Payload))
		f := outFrame{head: head, data: m.Payload, size: len(m.Topic) + 1 + len(m.Payload), fanout: true}
		if len(clients) > 1 {
			f.head, f.data = nil, append(head, m.Payload...)
		}
		frames = append(frames, f)
	}
	for _, c := range clients {
		if c.gone.Load() {
			continue
		}
		if c.deliver(frames, h.direct) && c.queuedBytes() > backlogBytes {
			backlog = true
		}
	}
	return backlog
}
