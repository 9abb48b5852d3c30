package wshub

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// handle answers one client frame; what is not a subscribe frame is ignored, and nothing a
// client sends closes the connection (0.8.x aborted it, §5.3).
func (c *client) handle(data []byte) {
	f, err := parseClientFrame(data)
	if err != nil {
		c.hub.counters.badFrames.Add(1)
		c.logger().Debug("ignored client frame", "err", err, "size", len(data))
		return
	}
	if f.msgtype != "subscribe" {
		return
	}
	if f.topic == "" {
		c.hub.counters.badFrames.Add(1)
		c.logger().Debug("ignored subscribe without topic")
		return
	}
	ctx, done := c.handlingContext()
	defer done()
	if refusal := c.hub.handleSubscribe(ctx, c, f.topic, f.auth); refusal != nil {
		c.reply(refusal)
	}
}

// writeLoop writes what there is to write, then ends; once the connection is closing it
// writes the close frame and closes the connection instead. At most one runs at a time.
// Whatever is queued when it looks (up to maxBatchFrames and maxBatchBytes) goes out in one
// write.
func (c *client) writeLoop() {
	bp := buffersPool.Get().(*net.Buffers)
	defer buffersPool.Put(bp)
	written := 0 // bytes of the last batch, released with the next lock
	for {
		c.mu.Lock()
		c.queued -= written
		written = 0
		if c.closing {
			c.mu.Unlock()
			c.finish()
			return
		}
		bufs := (*bp)[:0]
		fanout, size, n := 0, 0, 0
		for n < maxBatchFrames && size < maxBatchBytes {
			f, ok := c.nextLocked()
			if !ok {
				break
			}
			if f.head != nil {
				bufs = append(bufs, f.head)
			}
			bufs = append(bufs, f.data)
			size += f.size
			n++
			if f.fanout {
				fanout++
			}
		}
		if c.pingDue {
			// After the frames: the first may be the rest of one begun already.
			c.pingDue = false
			bufs = append(bufs, pingFrame)
		}
		if len(bufs) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		*bp = bufs[:0] // keep the grown list; WriteTo consumes bufs
		err := c.writeBuffers(&bufs)
		clear((*bp)[:cap(*bp)]) // let the frames go
		if err != nil {
			c.writeFailed(err, fanout)
			continue
		}
		written = size
		c.hub.counters.delivered.Add(uint64(fanout))
	}
}

// pingFrame is an empty ping.
var pingFrame = appendHeader(nil, opPing, 0)

// writeBuffers writes bufs in one go (writev), within the write timeout.
func (c *client) writeBuffers(bufs *net.Buffers) error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// writeFailed closes the connection after a failed write; lost counts the fan-out frames
// that were in it.
func (c *client) writeFailed(err error, lost int) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.closeSlow(fmt.Sprintf("slow consumer: write timed out after %s", c.hub.cfg.WriteTimeout), lost)
		return
	}
	if _, first := c.closeWith(websocket.CloseAbnormalClosure, "", true); first {
		c.logger().Debug("websocket write failed", "err", err)
	}
}

// finish sends the close frame, gives the client a moment to answer it (a clean close
// tells a browser not to treat it as an error) and closes the connection.
func (c *client) finish() {
	defer c.end()
	c.mu.Lock()
	code, reason, peerGone, farewell := c.code, c.reason, c.peerGone, c.farewell
	rest := c.queue[c.head:] // only the rest of a frame begun already (see closeWith)
	c.queue, c.head = nil, 0
	c.mu.Unlock()
	if !peerGone {
		msg := websocket.FormatCloseMessage(code, reason)
		var bufs net.Buffers
		for _, f := range rest {
			bufs = append(bufs, f.head, f.data)
		}
		if farewell != nil {
			f := textFrame(farewell)
			bufs = append(bufs, f.head, f.data)
		}
		bufs = append(bufs, append(appendHeader(nil, opClose, len(msg)), msg...))
		c.nc.SetWriteDeadline(time.Now().Add(closeGrace))
		if _, err := bufs.WriteTo(c.nc); err == nil {
			select {
			case <-c.readerEnd:
			case <-time.After(closeGrace):
			}
		}
	}
	c.nc.Close()
	c.readEnded() // the client may never have answered
}
