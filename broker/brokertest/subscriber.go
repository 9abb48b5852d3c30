package brokertest

import (
	"sync"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Subscriber is an in-memory stand-in for broker.Subscriber in the unit tests of its users
// (the worker's hub): Publish delivers a message, in order, when its topic is subscribed;
// Lose reports a loss; subscriptions are acknowledged at once. Deliveries and losses are
// serialised, as the real subscriber's goroutine serialises them.
type Subscriber struct {
	mu      sync.Mutex
	deliver func([]broker.Message) bool
	loss    func(broker.Loss)
	topics  map[string]chan struct{}
	closed  bool
	stats   broker.SubscriberStats
}

// NewSubscriber makes a Subscriber that hands messages to deliver and losses to loss.
func NewSubscriber(deliver func([]broker.Message) bool, loss func(broker.Loss)) *Subscriber {
	return &Subscriber{deliver: deliver, loss: loss, topics: map[string]chan struct{}{}}
}

// SubscribeAck subscribes topic; the channel is closed already.
func (s *Subscriber) SubscribeAck(topic string) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, broker.ErrClosed
	}
	acked, ok := s.topics[topic]
	if !ok {
		acked = make(chan struct{})
		close(acked)
		s.topics[topic] = acked
		s.stats.Acks++
	}
	return acked, nil
}

// Unsubscribe forgets topic.
func (s *Subscriber) Unsubscribe(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return broker.ErrClosed
	}
	delete(s.topics, topic)
	return nil
}

// Publish delivers m if its topic is subscribed (like ZeroMQ, drops it silently otherwise).
func (s *Subscriber) Publish(m broker.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Received++
	if _, ok := s.topics[m.Topic]; !ok || s.closed {
		return
	}
	s.stats.Delivered++
	s.deliver([]broker.Message{m})
}

// Lose reports a loss, as the real subscriber does when a chain breaks.
func (s *Subscriber) Lose(l broker.Loss) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loss(l)
}

// Stats reports messages received (published here) and delivered, and acknowledgements.
func (s *Subscriber) Stats() broker.SubscriberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close stops delivery.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
