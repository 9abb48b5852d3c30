package wshub

import (
	"encoding/binary"
	"net"
	"sync"
)

// The hub writes its websocket frames itself, so that the frames queued for a connection go
// out in one system call (writev) instead of one each: a connection that fell a few frames
// behind catches up at a fraction of the cost, and its reader gets them in one read. Only
// server-to-client frames are written, which are never masked; gorilla/websocket does the
// handshake, and the hub reads the client's frames itself (poller.go, reader.go).

// Frame opcodes (RFC 6455 §5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxHeader is the longest frame header the server writes.
const maxHeader = 10

// appendHeader appends the header of a final, unmasked frame of n payload bytes.
func appendHeader(dst []byte, opcode byte, n int) []byte {
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// frameHead is what precedes a published payload in its text frame topic:payload: the
// frame header, the topic and the colon, in a buffer with room for the payload after it.
func frameHead(topic string, payloadLen int) []byte {
	n := len(topic) + 1
	b := appendHeader(make([]byte, 0, maxHeader+n+payloadLen), opText, n+payloadLen)
	return append(append(b, topic...), ':')
}

// Limits of one write.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 256 << 10
)

// buffersPool holds the writers' iovec lists.
var buffersPool = sync.Pool{New: func() any { b := make(net.Buffers, 0, 2*maxBatchFrames+1); return &b }}
