package wshub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/broker/internal/ratelog"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Hub is the topic→connections table of one worker, fed by its own ZeroMQ subscriber.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	sub      *broker.Subscriber
	keys     *keyLookup
	registry *prometheus.Registry
	ctx      context.Context // cancelled by Shutdown: aborts pending key lookups
	cancel   context.CancelFunc
	conns    sync.WaitGroup // client goroutines
	// handshakes counts upgrades under way; Add only under mu while not draining, so that
	// Shutdown can wait for connections that were accepted but not registered yet.
	handshakes sync.WaitGroup

	mu       sync.RWMutex
	topics   map[string][]*client // copy-on-write: dispatch iterates without the lock
	joining  map[string]int       // clients waiting for a topic's acknowledgement
	clients  map[*client]struct{}
	draining bool

	// subMu serialises changes of the ZeroMQ subscriptions so that concurrent first
	// subscribe / last unsubscribe of a topic always leave the socket matching the table.
	// zmqTopics maps each subscribed topic to the channel closed by its acknowledgement.
	subMu     sync.Mutex
	zmqTopics map[string]<-chan struct{}

	counters  counters
	apiErrLog ratelog.Limiter
	ackLog    ratelog.Limiter
}

// New connects the hub's ZeroMQ subscriber; serve Handler to accept websockets.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, topics: make(map[string][]*client),
		joining: make(map[string]int), clients: make(map[*client]struct{}), zmqTopics: make(map[string]<-chan struct{})}
	h.keys = newKeyLookup(cfg.APIURL, cfg.SecretKey, cfg.HTTPClient)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.sub, err = broker.NewSubscriber(cfg.ZMQAddr, h.dispatch, broker.WithLogger(cfg.Logger))
	if err != nil {
		h.cancel()
		return nil, fmt.Errorf("wshub: %w", err)
	}
	h.registry = h.newRegistry()
	return h, nil
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
func (h *Hub) subscribe(c *client, topic string) error {
	h.mu.Lock()
	if _, ok := c.topics[topic]; ok {
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
		h.awaitAck(c, topic, acked)
	}

	h.mu.Lock()
	if h.joining[topic]--; h.joining[topic] == 0 {
		delete(h.joining, topic)
	}
	if err == nil {
		c.topics[topic] = struct{}{}
		h.topics[topic] = append(slices.Clip(h.topics[topic]), c)
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
// only while c is open. It runs on c's reader goroutine, without any lock held.
func (h *Hub) awaitAck(c *client, topic string, acked <-chan struct{}) {
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
	case <-c.ctx.Done():
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
	for topic := range topics {
		rest := slices.DeleteFunc(slices.Clone(h.topics[topic]), func(o *client) bool { return o == c })
		if len(rest) == 0 {
			delete(h.topics, topic)
		} else {
			h.topics[topic] = rest
		}
	}
	h.counters.connections.Add(-1)
	h.counters.subscriptions.Add(-int64(len(topics)))
	h.mu.Unlock()
	for topic := range topics {
		if _, err := h.syncTopic(topic); err != nil {
			h.log.Debug("zmq unsubscribe", "topic", topic, "err", err)
		}
	}
}

// syncTopic makes the ZeroMQ subscription of topic match whether any client watches or
// is joining it. While one does, it returns the channel closed by the subscription's
// acknowledgement (the same one for every client of the topic). It must not be called from dispatch, which
// runs on the subscriber's goroutine.
func (h *Hub) syncTopic(topic string) (<-chan struct{}, error) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.RLock()
	want := len(h.topics[topic]) > 0 || h.joining[topic] > 0
	h.mu.RUnlock()
	acked, have := h.zmqTopics[topic]
	switch {
	case want && have:
		return acked, nil
	case want:
		acked, err := h.sub.SubscribeAck(topic)
		if err != nil {
			return nil, err
		}
		h.zmqTopics[topic] = acked
		return acked, nil
	case have:
		delete(h.zmqTopics, topic)
		return nil, h.sub.Unsubscribe(topic)
	}
	return nil, nil
}

// dispatch fans one message out. It runs on the subscriber's goroutine and never blocks:
// the frame and its websocket encoding are built once, then only queued per connection.
func (h *Hub) dispatch(m broker.Message) {
	h.mu.RLock()
	clients := h.topics[m.Topic]
	h.mu.RUnlock()
	if len(clients) == 0 {
		h.counters.unwatched.Add(1)
		return
	}
	if kind, _ := topicKind(m.Topic); kind == broker.KindPlot && !deliverableOnPlot(m.Payload) {
		h.counters.droppedMsgtype.Add(1)
		h.log.Debug("dropped frame BokehJS cannot handle", "topic", m.Topic, "size", len(m.Payload))
		return
	}
	frame := make([]byte, 0, len(m.Topic)+1+len(m.Payload))
	frame = append(append(append(frame, m.Topic...), ':'), m.Payload...)
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	if err != nil {
		h.log.Error("prepare websocket frame", "topic", m.Topic, "err", err)
		return
	}
	for _, c := range clients {
		if !slices.Contains(m.Exclude, c.id) {
			c.enqueue(outFrame{prepared: pm, size: len(frame), fanout: true})
		}
	}
}
