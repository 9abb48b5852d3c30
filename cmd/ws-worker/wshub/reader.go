package wshub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// inFrames splits what a client sends into frames (RFC 6455 §5), between reads: the
// header in pieces, a data message up to MaxInboundBytes, a control frame's payload.
// Client frames are always masked. An idle connection's state is this struct alone.
type inFrames struct {
	hdr     [14]byte
	hdrLen  uint8
	inFrame bool
	fin     bool
	op      byte
	msgOp   byte // opcode of the data message under way (0: none)
	mask    [4]byte
	pos     uint64 // payload bytes of the current frame unmasked so far
	left    uint64 // payload bytes of the current frame still to come
	msg     []byte // the data message so far
	ctl     []byte // the control frame's payload so far
}

// frameError is a client breaking the protocol; code is the close code to answer with.
type frameError struct {
	code   int
	reason string
}

func (e *frameError) Error() string { return e.reason }

func protocolError(format string, args ...any) error {
	return &frameError{code: websocket.CloseProtocolError, reason: fmt.Sprintf(format, args...)}
}

// errPeerClosed ends reading after the client's close frame.
var errPeerClosed = errors.New("websocket closed by client")

// readable reads what the socket has (edge-triggered: until it is empty) and handles the
// frames. It runs on the poller's goroutine, with its buffer.
func (c *client) readable(buf []byte) {
	c.mu.Lock()
	over := c.readOver
	c.mu.Unlock()
	if over {
		return
	}
	var failed error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), buf)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
				return true
			case err != nil:
				failed = err
				return true
			case n == 0:
				failed = errPeerGone
				return true
			}
			c.lastRead.Store(time.Now().UnixNano())
			if failed = c.in.feed(buf[:n], c); failed != nil || n < len(buf) {
				return true
			}
		}
	})
	if failed == nil {
		failed = err // the connection was closed meanwhile
	}
	if failed != nil {
		c.readFailed(failed)
	}
}

// errPeerGone is the end of the client's stream, or a socket error.
var errPeerGone = errors.New("connection closed by the client")

// readFailed ends reading and closes the connection as the failure calls for.
func (c *client) readFailed(err error) {
	var fe *frameError
	switch {
	case errors.Is(err, errPeerClosed):
		// The writer answers the close frame (closeWith was called with its code).
	case errors.As(err, &fe):
		c.closeWith(fe.code, "", false)
		c.logger().Info("closing websocket", "reason", fe.reason, "code", fe.code)
	default:
		c.closeWith(websocket.CloseAbnormalClosure, "", true)
		c.logger().Debug("websocket read ended", "err", err)
	}
	c.readEnded()
}

// readTimedOut closes a connection that sent nothing (not even a pong) for the read
// timeout; the pinger calls it.
func (c *client) readTimedOut(now time.Time) bool {
	last := time.Unix(0, c.lastRead.Load())
	if now.Sub(last) <= c.hub.cfg.readTimeout() {
		return false
	}
	if _, first := c.closeWith(websocket.CloseGoingAway, "ping timeout", false); first {
		c.logger().Info("closing websocket", "reason", "no pong within "+c.hub.cfg.readTimeout().String())
	}
	c.readEnded()
	return true
}

// readEnded forgets the connection's reading side, once: it leaves the poller and the
// hub's tables, and Shutdown counts it done.
func (c *client) readEnded() {
	c.mu.Lock()
	if c.readOver {
		c.mu.Unlock()
		return
	}
	c.readOver = true
	c.mu.Unlock()
	c.hub.poller.remove(c)
	c.hub.unregister(c)
	close(c.readerEnd)
	c.end()
}

// frame handling, called by feed.

// onMessage takes a complete data message: text frames are handled one at a time, in
// order, on a goroutine (a subscribe waits for a key lookup and an acknowledgement); the
// rest is ignored, as before.
func (c *client) onMessage(op byte, data []byte) error {
	if op != opText {
		return nil
	}
	c.mu.Lock()
	if c.inboxBytes+len(data) > MaxInboundBytes {
		c.mu.Unlock()
		return &frameError{code: websocket.ClosePolicyViolation, reason: "client frames arrive faster than they are handled"}
	}
	c.inbox = append(c.inbox, data)
	c.inboxBytes += len(data)
	start := !c.handling
	c.handling = true
	c.mu.Unlock()
	if start {
		go c.handleInbox()
	}
	return nil
}

func (c *client) handleInbox() {
	for {
		c.mu.Lock()
		if len(c.inbox) == 0 || c.closing {
			c.inbox, c.inboxBytes, c.handling = nil, 0, false
			c.mu.Unlock()
			return
		}
		data := c.inbox[0]
		c.inbox[0] = nil
		c.inbox = c.inbox[1:]
		c.inboxBytes -= len(data)
		c.mu.Unlock()
		c.handle(data)
	}
}

func (c *client) onControl(op byte, payload []byte) error {
	switch op {
	case opPing:
		// Answered by the writer, between its frames.
		c.enqueue(outFrame{head: appendHeader(make([]byte, 0, maxHeader), opPong, len(payload)), data: append([]byte(nil), payload...)})
	case opClose:
		code := websocket.CloseNoStatusReceived
		if len(payload) == 1 {
			return protocolError("close frame of one byte")
		}
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
			if !validCloseCode(code) {
				return protocolError("invalid close code %d", code)
			}
			if !utf8.Valid(payload[2:]) {
				return &frameError{code: websocket.CloseInvalidFramePayloadData, reason: "close reason is not UTF-8"}
			}
		}
		// Answered by the writer with the same code, as gorilla would.
		c.closeWith(code, "", false)
		c.logger().Debug("websocket closed by client", "code", code)
		return errPeerClosed
	}
	return nil // a pong: reading it moved lastRead
}

// validCloseCode reports whether a client may send code (RFC 6455 §7.4).
func validCloseCode(code int) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011:
		return true
	}
	return code >= 3000 && code <= 4999
}

// feed consumes p, handing complete messages and control frames to c.
func (f *inFrames) feed(p []byte, c *client) error {
	for len(p) > 0 || (f.inFrame && f.left == 0) {
		if !f.inFrame {
			n, err := f.readHeader(p)
			if err != nil {
				return err
			}
			p = p[n:]
			if !f.inFrame {
				return nil // header incomplete: needs the next read
			}
		}
		k := min(f.left, uint64(len(p)))
		dst := &f.msg
		if f.op >= opClose {
			dst = &f.ctl
		}
		start := len(*dst)
		*dst = append(*dst, p[:k]...)
		for i := start; i < len(*dst); i++ {
			(*dst)[i] ^= f.mask[f.pos&3]
			f.pos++
		}
		p, f.left = p[k:], f.left-k
		if f.left > 0 {
			return nil
		}
		f.inFrame = false
		switch {
		case f.op >= opClose:
			payload := f.ctl
			f.ctl = nil
			if err := c.onControl(f.op, payload); err != nil {
				return err
			}
		case f.fin:
			msg, op := f.msg, f.msgOp
			f.msg, f.msgOp = nil, 0
			if err := c.onMessage(op, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// readHeader takes header bytes from p (keeping a partial header for later) and returns how
// many it used; f.inFrame tells whether the header is complete.
func (f *inFrames) readHeader(p []byte) (int, error) {
	used := 0
	for {
		need := 2
		if f.hdrLen >= 2 {
			switch f.hdr[1] & 0x7f {
			case 126:
				need = 4
			case 127:
				need = 10
			}
			need += 4 // the mask
		}
		if int(f.hdrLen) >= need {
			break
		}
		if used == len(p) {
			return used, nil
		}
		k := min(need-int(f.hdrLen), len(p)-used)
		copy(f.hdr[f.hdrLen:], p[used:used+k])
		f.hdrLen += uint8(k)
		used += k
	}
	h := f.hdr[:f.hdrLen]
	f.hdrLen = 0
	if h[0]&0x70 != 0 {
		return used, protocolError("reserved bits set (no extension was agreed)")
	}
	if h[1]&0x80 == 0 {
		return used, protocolError("client frame not masked")
	}
	f.fin, f.op = h[0]&0x80 != 0, h[0]&0x0f
	var n uint64
	switch l := h[1] & 0x7f; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
	default:
		n = uint64(l)
	}
	copy(f.mask[:], h[len(h)-4:])
	switch {
	case f.op >= opClose:
		if f.op > opPong || !f.fin || n > 125 {
			return used, protocolError("bad control frame (opcode %d, %d bytes)", f.op, n)
		}
	case f.op == 0:
		if f.msgOp == 0 {
			return used, protocolError("continuation frame without a message")
		}
	case f.op == opText || f.op == opBinary:
		if f.msgOp != 0 {
			return used, protocolError("new message inside a fragmented one")
		}
		f.msgOp = f.op
	default:
		return used, protocolError("reserved opcode %d", f.op)
	}
	if f.op < opClose && uint64(len(f.msg))+n > MaxInboundBytes {
		return used, &frameError{code: websocket.CloseMessageTooBig, reason: fmt.Sprintf("client frame over %d bytes", MaxInboundBytes)}
	}
	f.left, f.pos, f.inFrame = n, 0, true
	return used, nil
}
