package wshub

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// maskedFrame encodes a frame as a browser sends it: masked, with the header length the
// payload needs.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xFFFF:
		out = binary.BigEndian.AppendUint16(append(out, 0x80|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, 0x80|127), uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

func subscribeJSON(topic string) []byte {
	return []byte(`{"msgtype": "subscribe", "topic": "` + topic + `", "auth": null}`)
}

// TestReaderFramesInPieces: frames split anywhere between reads, a fragmented message and
// a ping between its fragments are read as a browser sent them, in order.
func TestReaderFramesInPieces(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()
	second := subscribeJSON("bokehuser:b")
	var stream []byte
	stream = append(stream, maskedFrame(true, opText, subscribeJSON("bokehuser:a"))...)
	stream = append(stream, maskedFrame(false, opText, second[:10])...)
	stream = append(stream, maskedFrame(true, opPing, []byte("hi"))...)
	stream = append(stream, maskedFrame(true, 0, second[10:])...)
	pongs := make(chan string, 1)
	c.conn.SetPongHandler(func(s string) error { pongs <- s; return nil })
	for i := range stream { // one byte per write: every split a read can see
		if _, err := c.conn.NetConn().Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for _, topic := range []string{"bokehuser:a", "bokehuser:b"} {
		if f := c.next(); !strings.HasPrefix(f, topic+`:{"msgtype": "status", "status": ["subscribesuccess"`) {
			t.Fatalf("got %q, want the success reply of %s", f, topic)
		}
	}
	select {
	case p := <-pongs:
		if p != "hi" {
			t.Fatalf("pong %q, want hi", p)
		}
	case <-time.After(waitLimit):
		t.Fatal("no pong")
	}
}

// TestReaderRefusesBadFrames: a client breaking the protocol is closed with the code RFC
// 6455 names, and the hub forgets it.
func TestReaderRefusesBadFrames(t *testing.T) {
	unmasked := maskedFrame(true, opText, []byte("{}"))
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], unmasked[6:]...)
	longPing := maskedFrame(true, opPing, make([]byte, 126))
	reserved := maskedFrame(true, opText, []byte("{}"))
	reserved[0] |= 0x40
	huge := maskedFrame(true, opText, make([]byte, 10))
	huge[1] = 0x80 | 127
	huge = append(append(huge[:2], binary.BigEndian.AppendUint64(nil, MaxInboundBytes+1)...), huge[2:]...)
	cases := []struct {
		name  string
		bytes []byte
		code  int
	}{
		{"unmasked", unmasked, websocket.CloseProtocolError},
		{"control frame over 125 bytes", longPing, websocket.CloseProtocolError},
		{"reserved bits", reserved, websocket.CloseProtocolError},
		{"continuation without a message", maskedFrame(true, 0, []byte("x")), websocket.CloseProtocolError},
		{"reserved opcode", maskedFrame(true, 3, nil), websocket.CloseProtocolError},
		{"message over the limit", huge, websocket.CloseMessageTooBig},
		{"close code 1005 sent", maskedFrame(true, opClose, []byte{0x03, 0xed}), websocket.CloseProtocolError},
		{"close frame of one byte", maskedFrame(true, opClose, []byte{3}), websocket.CloseProtocolError},
		{"client close 4000", maskedFrame(true, opClose, []byte{0x0f, 0xa0, 'b', 'y', 'e'}), 4000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, false)
			c := e.dial()
			c.mustSubscribe("bokehuser:x", nil)
			if _, err := c.conn.NetConn().Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			var ce *websocket.CloseError
			if err := c.waitClosed(); !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("closed with %v, want code %d", err, tc.code)
			}
			waitFor(t, "the connection to be forgotten", func() bool {
				st := e.hub.Stats()
				return st.ConnectionsCurrent == 0 && st.Subscriptions == 0
			})
		})
	}
}

// TestIdleConnectionsHoldNoGoroutine: a subscribed, idle connection costs the worker no
// goroutine (the poller reads them all).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	e := newEnv(t, nil, false)
	warm := e.dialWith(e.wsURL("/bokeh/sub"), nil, false)
	subscribeQuietly(t, warm, "bokehuser:idle")
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 40
	for range n {
		subscribeQuietly(t, e.dialWith(e.wsURL("/bokeh/sub"), nil, false), "bokehuser:idle")
	}
	// The subscribes' handling goroutines end once they have answered.
	var after int
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after-before < n/4 {
			return
		}
	}
	t.Fatalf("%d idle connections added %d goroutines", n, after-before)
}

// subscribeQuietly subscribes a client dialled without a reader goroutine.
func subscribeQuietly(t *testing.T, c *wsClient, topic string) {
	t.Helper()
	c.subscribe(topic, nil)
	c.conn.SetReadDeadline(time.Now().Add(waitLimit))
	if _, msg, err := c.conn.ReadMessage(); err != nil || !strings.Contains(string(msg), "subscribesuccess") {
		t.Fatalf("subscribe: %q %v", msg, err)
	}
}

// TestPollerFailureIsReported: when the poller can wait no longer (here its epoll instance
// is closed under it), Failed says so, for ws-worker to exit and be restarted instead of
// holding connections it no longer reads.
func TestPollerFailureIsReported(t *testing.T) {
	e := newEnv(t, nil, false)
	e.hub.poller.epfd.Close()
	select {
	case err := <-e.hub.Failed():
		if err == nil || !strings.Contains(err.Error(), "reading websockets stopped") {
			t.Fatalf("Failed delivered %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the poller stopped and Failed said nothing")
	}
}
