package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WSClient is a websocket connection that behaves like BokehJS: it subscribes to topics and
// collects every frame it is sent.
type WSClient struct {
	URL    string
	conn   *websocket.Conn
	frames chan string
	mu     sync.Mutex
	err    error
	done   chan struct{}
}

// frameBuffer is how many frames a client holds before the test reads them.
const frameBuffer = 100000

// WSURL asks the API where to open a websocket, like BokehJS's GET bokeh/wsurl/.
func WSURL(tb testing.TB, root string) string {
	tb.Helper()
	resp, err := http.Get(root + "bokeh/wsurl/")
	if err != nil {
		tb.Fatalf("wsurl: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("wsurl: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// Dial opens a websocket. With read false the client never reads (a stalled browser).
func Dial(tb testing.TB, url string, read bool) *WSClient {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"http://127.0.0.1"}})
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	c := &WSClient{URL: url, conn: conn, frames: make(chan string, frameBuffer), done: make(chan struct{})}
	if read {
		go c.readLoop()
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func (c *WSClient) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		select {
		case c.frames <- string(b):
		default: // a test that stops reading must not wedge the connection
		}
	}
}

// Subscribe sends a subscribe message (auth nil → JSON null) and returns the reply frame.
func (c *WSClient) Subscribe(tb testing.TB, topic string, auth *string) string {
	tb.Helper()
	msg, _ := json.Marshal(map[string]any{"msgtype": "subscribe", "topic": topic, "auth": auth})
	if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		tb.Fatalf("subscribe %s: %v", topic, err)
	}
	frame, ok := c.Next(tb, 10*time.Second)
	if !ok {
		tb.Fatalf("no reply to subscribe %s (%v)", topic, c.Err())
	}
	return frame
}

// MustSubscribe subscribes and fails the test unless the reply is subscribesuccess.
func (c *WSClient) MustSubscribe(tb testing.TB, topic, auth string) {
	tb.Helper()
	reply := c.Subscribe(tb, topic, &auth)
	if !strings.HasPrefix(reply, topic+":") || !strings.Contains(reply, "subscribesuccess") {
		tb.Fatalf("subscribe %s: %s", topic, reply)
	}
}

// Next returns the next frame, or false after timeout or when the socket closed.
func (c *WSClient) Next(tb testing.TB, timeout time.Duration) (string, bool) {
	select {
	case f := <-c.frames:
		return f, true
	case <-time.After(timeout):
		return "", false
	case <-c.done:
		select {
		case f := <-c.frames:
			return f, true
		default:
			return "", false
		}
	}
}

// Closed reports whether the server closed the connection (for a reading client).
func (c *WSClient) Closed() <-chan struct{} { return c.done }

// Err is the read error that ended the connection, if any.
func (c *WSClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection.
func (c *WSClient) Close() { c.conn.Close() }

// Watch adapts the client to apitest.Target.Watch: subscribe to topic on a worker found
// through root's wsurl.
func Watch(root string) func(tb testing.TB, topic, auth string) *WSClient {
	return func(tb testing.TB, topic, auth string) *WSClient {
		c := Dial(tb, WSURL(tb, root), true)
		c.MustSubscribe(tb, topic, auth)
		return c
	}
}
