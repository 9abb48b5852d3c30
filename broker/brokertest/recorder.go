// Package brokertest holds test doubles of the broker package: a Publisher that records
// what it is given, for tests of code that publishes.
package brokertest

import (
	"sync"
	"sync/atomic"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Recorder is an in-process broker.Publisher that keeps what was published.
type Recorder struct {
	mu        sync.Mutex
	msgs      []broker.Message
	published atomic.Uint64
}

// Publish records m.
func (r *Recorder) Publish(m broker.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.published.Add(1)
}

// Messages returns a copy of everything published so far.
func (r *Recorder) Messages() []broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Message(nil), r.msgs...)
}

// Reset forgets recorded messages.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.msgs = nil
	r.mu.Unlock()
}

// Stats reports the number of messages published.
func (r *Recorder) Stats() broker.PublishStats {
	return broker.PublishStats{Published: r.published.Load()}
}

// Close does nothing.
func (r *Recorder) Close() error { return nil }
