package wshub

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// readLoop handles the client's frames until the connection fails or closes, then removes
// the client from the hub.
func (c *client) readLoop() {
	defer c.hub.conns.Done()
	defer close(c.readerEnd)
	defer c.hub.unregister(c)
	timeout := c.hub.cfg.readTimeout()
	c.conn.SetReadLimit(MaxInboundBytes)
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(timeout))
	})
	for {
		// Reset per frame: a slow doc-key lookup must not eat into the next read's time.
		if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			c.readFailed(err)
			return
		}
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		if typ == websocket.TextMessage {
			c.handle(data)
		}
	}
}

func (c *client) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		// gorilla has answered the close frame already.
		c.closeWith(ce.Code, "", true)
		c.log.Debug("websocket closed by client", "code", ce.Code)
	case errors.As(err, &ne) && ne.Timeout():
		if _, first := c.closeWith(websocket.CloseGoingAway, "ping timeout", false); first {
			c.log.Info("closing websocket", "reason", "no pong within "+c.hub.cfg.readTimeout().String())
		}
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent close 1009 already.
		c.closeWith(websocket.CloseMessageTooBig, "", true)
		c.log.Info("closing websocket", "reason", fmt.Sprintf("client frame over %d bytes", MaxInboundBytes))
	default:
		c.closeWith(websocket.CloseAbnormalClosure, "", true)
		c.log.Debug("websocket read failed", "err", err)
	}
}

// handle answers one client frame; what is not a subscribe frame is ignored, and nothing a
// client sends closes the connection (0.8.x aborted it, §5.3).
func (c *client) handle(data []byte) {
	f, err := parseClientFrame(data)
	if err != nil {
		c.hub.counters.badFrames.Add(1)
		c.log.Debug("ignored client frame", "err", err, "size", len(data))
		return
	}
	if f.msgtype != "subscribe" {
		return
	}
	if f.topic == "" {
		c.hub.counters.badFrames.Add(1)
		c.log.Debug("ignored subscribe without topic")
		return
	}
	if refusal := c.hub.handleSubscribe(c, f.topic, f.auth); refusal != nil {
		c.reply(refusal)
	}
}

// writeLoop is the connection's only writer: queued frames, pings and the close frame.
func (c *client) writeLoop() {
	defer c.hub.conns.Done()
	defer c.finish()
	cfg := &c.hub.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
			for {
				f, ok := c.next()
				if !ok {
					break
				}
				if err := c.write(f); err != nil {
					c.writeFailed(err, f.fanout)
					return
				}
				c.written(f)
			}
		case <-ping.C:
			err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout))
			if err != nil {
				c.writeFailed(err, false)
				return
			}
		}
	}
}

func (c *client) write(f outFrame) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
		return err
	}
	if f.prepared != nil {
		return c.conn.WritePreparedMessage(f.prepared)
	}
	return c.conn.WriteMessage(websocket.TextMessage, f.reply)
}

func (c *client) writeFailed(err error, fanout bool) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.closeSlow(fmt.Sprintf("slow consumer: write timed out after %s", c.hub.cfg.WriteTimeout), fanout)
		return
	}
	if _, first := c.closeWith(websocket.CloseAbnormalClosure, "", true); first {
		c.log.Debug("websocket write failed", "err", err)
	}
}

// finish sends the close frame, gives the client a moment to answer it (a clean close
// tells a browser not to treat it as an error) and closes the connection.
func (c *client) finish() {
	c.mu.Lock()
	code, reason, peerGone := c.code, c.reason, c.peerGone
	c.mu.Unlock()
	if !peerGone {
		msg := websocket.FormatCloseMessage(code, reason)
		if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err == nil {
			select {
			case <-c.readerEnd:
			case <-time.After(closeGrace):
			}
		}
	}
	c.conn.Close()
}
