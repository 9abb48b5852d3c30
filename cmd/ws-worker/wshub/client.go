package wshub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var errTooMany = errors.New(errTooManyTopics)

// keptQueueCap is the largest send-queue array kept between bursts (frames, not bytes).
const keptQueueCap = 64

// outFrame is one queued frame: head (a header, or nil) followed by data. A published
// frame's head (header, topic and colon) and data (the payload as it came from ZeroMQ) are
// made once and shared by every recipient; a connection's own frames (replies, pongs) get a
// header of their own. Neither is ever written to once queued.
type outFrame struct {
	head   []byte
	data   []byte
	size   int // what the frame counts against the queue limit
	fanout bool
	rest   bool // the rest of a frame partly written already: nothing may go before it
}

// textFrame is a frame of this connection's own carrying text.
func textFrame(text []byte) outFrame {
	return outFrame{head: appendHeader(make([]byte, 0, maxHeader), opText, len(text)), data: text,
		size: len(text)}
}

// client is one websocket connection. The hub's poller reads its frames (reader.go) and
// has text frames handled (a subscribe), one at a time, on a goroutine that runs while
// there are some. A writer goroutine, the only one that writes besides dispatch's direct
// writes, runs while there is something to write: queued frames (a queue bounded in bytes,
// so that a slow browser is closed instead of slowing anyone else, §8 item 13), a ping or
// the close. An idle connection thus costs no goroutine; pings come from the hub's pinger,
// which also closes connections silent for longer than the read timeout.
type client struct {
	id   string
	hub  *Hub
	nc   net.Conn
	raw  syscall.RawConn // nc's socket, for the poller's reads and dispatch's direct writes
	fd   int32           // its number, as the poller knows it
	slot uint8           // the hub's pinger pings the connection in this slot of PingInterval

	in       inFrames     // what the client sent so far; the poller's alone
	lastRead atomic.Int64 // time of the last bytes read, unix nanoseconds

	topics []string    // guarded by hub.mu; usually one or two
	gone   atomic.Bool // unregistered: dispatch skips it (subscribers.go); set under hub.mu

	mu       sync.Mutex
	queue    []outFrame // frames to write are queue[head:]
	head     int
	queued   int  // bytes queued or being written
	writing  bool // a writer goroutine runs (for good once closing)
	pingDue  bool
	closing  bool
	code     int
	reason   string
	peerGone bool   // no close frame can or need be sent
	farewell []byte // a text frame written just before the close frame
	ended    int    // of the reading side and the writer's close; at 2 the connection is gone
	readOver bool   // reading has ended (readEnded)
	// inbox holds text frames read and not handled yet; handling says a goroutine
	// handles them.
	inbox      [][]byte
	inboxBytes int
	handling   bool
	// cancelHandling cancels the context of the frame being handled (a subscribe's key
	// lookup and acknowledgement wait) when the connection closes.
	cancelHandling context.CancelFunc

	readerEnd chan struct{} // closed when reading has ended
}

// newClient makes the client of an upgraded connection, a socket (a *net.TCPConn, or any
// net.Conn whose SyscallConn reads and writes a file descriptor).
func newClient(h *Hub, nc net.Conn, id string) (*client, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("websocket connection %T has no file descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &client{id: id, hub: h, nc: nc, raw: raw, readerEnd: make(chan struct{}),
		slot: uint8(h.slots.Add(1) % uint32(h.pingSlots()))}
	c.lastRead.Store(time.Now().UnixNano())
	return c, nil
}

// handlingContext returns the context for handling one client frame; it ends when the
// connection closes (or the hub shuts down). The caller calls done afterwards.
func (c *client) handlingContext() (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(c.hub.ctx)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		cancel()
		return ctx, func() {}
	}
	c.cancelHandling = cancel
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		c.cancelHandling = nil
		c.mu.Unlock()
		cancel()
	}
}

// logger is the connection's logger, made when needed: connections are many, log lines
// about one are few.
func (c *client) logger() *slog.Logger {
	return c.hub.log.With("client", c.id, "remote", c.nc.RemoteAddr().String())
}

// startWriter reports whether the caller, holding mu, must start the writer goroutine.
func (c *client) startWriter() bool {
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// pingTime asks the writer for a ping.
func (c *client) pingTime() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	start := c.startWriter()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// end records that reading, or the writer's close, is over; the second one ends the
// connection for Shutdown.
func (c *client) end() {
	c.mu.Lock()
	c.ended++
	last := c.ended == 2
	c.mu.Unlock()
	if last {
		c.hub.conns.Done()
	}
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
		lost := 0
		if f.fanout {
			lost = 1
		}
		c.closeSlow(fmt.Sprintf("slow consumer: send queue over %d bytes", limit), lost)
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
	start := c.startWriter()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// queuedBytes is what waits in the send queue.
func (c *client) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// reply queues a reply frame of this connection's own.
func (c *client) reply(frame []byte) { c.enqueue(textFrame(frame)) }

// nextLocked pops the oldest queued frame; the caller holds mu.
func (c *client) nextLocked() (outFrame, bool) {
	if c.head == len(c.queue) {
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

// closeWith starts closing with a close frame of code and reason; it never blocks and only
// the first call has an effect (first reports it). It returns the fan-out frames that were
// still queued.
func (c *client) closeWith(code int, reason string, peerGone bool) (dropped int, first bool) {
	return c.closeWithFarewell(code, reason, peerGone, nil)
}

// closeWithFarewell is closeWith with a text frame sent just before the close frame (what
// was queued is dropped all the same).
func (c *client) closeWithFarewell(code int, reason string, peerGone bool, farewell []byte) (dropped int, first bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return 0, false
	}
	c.closing, c.code, c.reason, c.peerGone, c.farewell = true, code, reason, peerGone, farewell
	var rest []outFrame
	for _, f := range c.queue[c.head:] {
		switch {
		case f.rest:
			rest = append(rest, f) // finish completes it before the close frame
		case f.fanout:
			dropped++
		}
	}
	c.queue, c.head, c.queued = rest, 0, 0
	c.pingDue = false
	start := c.startWriter() // to write the close frame, unless one runs already
	cancel := c.cancelHandling
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if start {
		go c.writeLoop()
	}
	return dropped, true
}

// closeSlow closes a connection that cannot keep up, with 1008 (policy violation); lost
// counts the fan-out frames that could not be queued or written.
func (c *client) closeSlow(reason string, lost int) {
	dropped, first := c.closeWith(websocket.ClosePolicyViolation, "slow consumer", false)
	if !first {
		c.hub.counters.droppedClosed.Add(uint64(lost))
		return
	}
	// The writer is most likely blocked on the full socket; an expired deadline frees it
	// now rather than after the write timeout.
	c.nc.SetWriteDeadline(time.Now())
	dropped += lost
	c.hub.counters.slowCloses.Add(1)
	c.hub.counters.droppedSlow.Add(uint64(dropped))
	c.logger().Warn("closing websocket", "reason", reason, "dropped_frames", dropped)
}
