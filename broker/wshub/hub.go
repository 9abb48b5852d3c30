package wshub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

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

	mu       sync.RWMutex
	topics   map[string][]*client // copy-on-write: dispatch iterates without the lock
	clients  map[*client]struct{}
	draining bool

	// subMu serialises changes of the ZeroMQ subscriptions so that concurrent first
	// subscribe / last unsubscribe of a topic always leave the socket matching the table.
	subMu     sync.Mutex
	zmqTopics map[string]bool

	counters  counters
	apiErrLog ratelog.Limiter
}

// New connects the hub's ZeroMQ subscriber; serve Handler to accept websockets.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, topics: make(map[string][]*client),
		clients: make(map[*client]struct{}), zmqTopics: make(map[string]bool)}
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

// subscribe adds c to topic's subscribers. It returns once the ZeroMQ socket watches topic,
// so that the success reply is not sent before messages can flow.
func (h *Hub) subscribe(c *client, topic string) error {
	h.mu.Lock()
	if _, ok := c.topics[topic]; !ok {
		if len(c.topics) >= MaxTopicsPerClient {
			h.mu.Unlock()
			return errTooMany
		}
		c.topics[topic] = struct{}{}
		h.topics[topic] = append(slices.Clip(h.topics[topic]), c)
		h.counters.subscriptions.Add(1)
	}
	h.mu.Unlock()
	return h.syncTopic(topic)
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
		if err := h.syncTopic(topic); err != nil {
			h.log.Debug("zmq unsubscribe", "topic", topic, "err", err)
		}
	}
}

// syncTopic makes the ZeroMQ subscription of topic match whether any client watches it.
// It must not be called from dispatch, which runs on the subscriber's goroutine.
func (h *Hub) syncTopic(topic string) error {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.RLock()
	want := len(h.topics[topic]) > 0
	h.mu.RUnlock()
	if want == h.zmqTopics[topic] {
		return nil
	}
	if want {
		if err := h.sub.Subscribe(topic); err != nil {
			return err
		}
		h.zmqTopics[topic] = true
		return nil
	}
	delete(h.zmqTopics, topic)
	return h.sub.Unsubscribe(topic)
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
