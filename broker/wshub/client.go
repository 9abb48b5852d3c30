package wshub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var errTooMany = errors.New(errTooManyTopics)

// keptQueueCap is the largest send-queue array kept between bursts (frames, not bytes).
const keptQueueCap = 64

// outFrame is one queued text frame: a fan-out frame shared by all its recipients, or a
// reply of this connection's own.
type outFrame struct {
	prepared *websocket.PreparedMessage
	reply    []byte
	size     int
	fanout   bool
}

// client is one websocket connection. Its reader goroutine handles subscribe frames; its
// writer goroutine is the only one that writes, fed by a queue bounded in bytes so that a
// slow browser is closed instead of slowing anyone else (§8 item 13).
type client struct {
	id     string
	hub    *Hub
	conn   *websocket.Conn
	log    *slog.Logger
	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc

	topics map[string]struct{} // guarded by hub.mu

	mu        sync.Mutex
	queue     []outFrame // frames to write are queue[head:]
	head      int
	queued    int // bytes queued or being written
	closing   bool
	code      int
	reason    string
	peerGone  bool          // no close frame can or need be sent
	wake      chan struct{} // capacity 1: the writer has something to do
	done      chan struct{} // closed when closing starts
	readerEnd chan struct{} // closed when the reader has stopped
}

func newClient(h *Hub, conn *websocket.Conn, id string) *client {
	c := &client{id: id, hub: h, conn: conn, topics: make(map[string]struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}), readerEnd: make(chan struct{}),
		log: h.log.With("client", id, "remote", conn.RemoteAddr().String())}
	c.ctx, c.cancel = context.WithCancel(h.ctx)
	return c
}

// enqueue queues f without blocking. Overflowing the byte limit closes the connection; a
// single frame larger than the limit still goes out when nothing else is queued, so that
// one big modelpush does not disconnect every browser.
func (c *client) enqueue(f outFrame) {
	limit := c.hub.cfg.MaxQueueBytes
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		if f.fanout {
			c.hub.counters.droppedClosed.Add(1)
		}
		return
	}
	if c.queued > 0 && c.queued+f.size > limit {
		c.mu.Unlock()
		c.closeSlow(fmt.Sprintf("slow consumer: send queue over %d bytes", limit), f.fanout)
		return
	}
	if len(c.queue) == cap(c.queue) && c.head > 0 {
		// Reuse the written front instead of growing while the writer lags.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// reply queues a reply frame of this connection's own.
func (c *client) reply(frame []byte) { c.enqueue(outFrame{reply: frame, size: len(frame)}) }

// next pops the oldest queued frame.
func (c *client) next() (outFrame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.head == len(c.queue) {
		return outFrame{}, false
	}
	f := c.queue[c.head]
	c.queue[c.head] = outFrame{} // the prepared frame may be large: do not keep it alive
	c.head++
	if c.head == len(c.queue) {
		// Keep a small backing array for the next frame; let a burst's big one go.
		if cap(c.queue) > keptQueueCap {
			c.queue = nil
		}
		c.queue, c.head = c.queue[:0], 0
	}
	return f, true
}

// written releases the bytes of a frame once it is on the wire.
func (c *client) written(f outFrame) {
	c.mu.Lock()
	c.queued -= f.size
	c.mu.Unlock()
	if f.fanout {
		c.hub.counters.delivered.Add(1)
	}
}

// closeWith starts closing with a close frame of code and reason; it never blocks and only
// the first call has an effect (first reports it). It returns the fan-out frames that were
// still queued.
func (c *client) closeWith(code int, reason string, peerGone bool) (dropped int, first bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return 0, false
	}
	c.closing, c.code, c.reason, c.peerGone = true, code, reason, peerGone
	for _, f := range c.queue[c.head:] {
		if f.fanout {
			dropped++
		}
	}
	c.queue, c.head, c.queued = nil, 0, 0
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	return dropped, true
}

// closeSlow closes a connection that cannot keep up, with 1008 (policy violation);
// plusOne counts the fan-out frame that could not be queued or written.
func (c *client) closeSlow(reason string, plusOne bool) {
	dropped, first := c.closeWith(websocket.ClosePolicyViolation, "slow consumer", false)
	if !first {
		if plusOne {
			c.hub.counters.droppedClosed.Add(1)
		}
		return
	}
	// The writer is most likely blocked on the full socket; an expired deadline frees it
	// now rather than after the write timeout (gorilla's own deadline is not goroutine-safe).
	c.conn.NetConn().SetWriteDeadline(time.Now())
	if plusOne {
		dropped++
	}
	c.hub.counters.slowCloses.Add(1)
	c.hub.counters.droppedSlow.Add(uint64(dropped))
	c.log.Warn("closing websocket", "reason", reason, "dropped_frames", dropped)
}
