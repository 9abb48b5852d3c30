package broker

import (
	"bytes"
	"fmt"
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
	broken    []string
	published atomic.Uint64
}

// Publish records m. It also checks the promise of m.Verbatim: the envelope must be the
// same whether those ranges are copied or escaped (see BrokenVerbatim).
func (r *Recorder) Publish(m Message) {
	var broken string
	if m.Verbatim != nil {
		plain := m
		plain.Verbatim = nil
		if with, want := m.AppendEnvelope(nil), plain.AppendEnvelope(nil); !bytes.Equal(with, want) {
			broken = fmt.Sprintf("%s: verbatim ranges %v change the envelope", m.Topic, m.Verbatim)
		}
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	if broken != "" {
		r.broken = append(r.broken, broken)
	}
	r.mu.Unlock()
	r.published.Add(1)
}

// BrokenVerbatim describes the messages whose Verbatim ranges needed escaping after all.
func (r *Recorder) BrokenVerbatim() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.broken...)
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
