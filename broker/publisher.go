package broker

import (
	"sync"
	"sync/atomic"
)

// Publisher sends messages towards websocket workers. Publish never blocks the caller on a
// slow or absent subscriber: what cannot be sent is dropped and counted. Messages from one
// Publisher are delivered in Publish order.
type Publisher interface {
	Publish(m Message)
	Stats() PublishStats
	Close() error
}

// PublishStats counts a publisher's messages. Acks counts the subscription
// acknowledgements a ZMQPublisher sent (they are not in Published).
type PublishStats struct {
	Published uint64
	Dropped   uint64
	Acks      uint64
}

// Recorder is an in-process Publisher that keeps what was published, for tests and for
// running the API without any worker.
type Recorder struct {
	mu        sync.Mutex
	msgs      []Message
	published atomic.Uint64
}

// Publish records m.
func (r *Recorder) Publish(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.published.Add(1)
}

// Messages returns a copy of everything published so far.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Reset forgets recorded messages.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.msgs = nil
	r.mu.Unlock()
}

// Stats reports the number of messages published.
func (r *Recorder) Stats() PublishStats { return PublishStats{Published: r.published.Load()} }

// Close does nothing.
func (r *Recorder) Close() error { return nil }
