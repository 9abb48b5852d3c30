package wshub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// bigPush is a 16 KiB modelpush, so that a few of them overflow small buffers.
func bigPush(i int) string {
	return fmt.Sprintf(`{"msgtype": "modelpush", "i": %d, "pad": "%s"}`, i, strings.Repeat("x", 16<<10))
}

func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, func(c *Config) { c.MaxQueueBytes = limit }, true)
	fast := e.dial()
	fast.mustSubscribe("bokehplot:doc1", "read1")

	// The slow client reads its subscribe reply and then nothing, through a tiny buffer.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return conn, err
	}}
	conn, _, err := dialer.Dial(e.wsURL("/bokeh/sub/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	slow := &wsClient{t: t, conn: conn, frames: make(chan string, 100000), closed: make(chan error, 1)}
	slow.subscribe("bokehplot:doc1", "read1")
	if _, reply, err := conn.ReadMessage(); err != nil || !strings.Contains(string(reply), "subscribesuccess") {
		t.Fatalf("slow client subscribe: %q %v", reply, err)
	}
	e.syncRoute()

	// Lockstep with the fast client: its queue never holds more than one frame, while the
	// slow client's fills up.
	sent := 0
	for ; sent < 2000 && e.hub.Stats().SlowClientCloses == 0; sent++ {
		e.publish("bokehplot:doc1", bigPush(sent))
		fast.expect("bokehplot:doc1:" + bigPush(sent))
	}
	if e.hub.Stats().SlowClientCloses != 1 {
		t.Fatalf("slow client not closed after %d frames of %d bytes", sent, len(bigPush(0)))
	}
	for i := range 20 {
		e.publish("bokehplot:doc1", bigPush(sent+i))
		fast.expect("bokehplot:doc1:" + bigPush(sent+i))
	}

	// The slow client finds what the kernel buffered, in order, then the end.
	go slow.readAll()
	got := 0
	for {
		select {
		case f := <-slow.frames:
			if f != "bokehplot:doc1:"+bigPush(got) {
				t.Fatalf("slow client frame %d out of order", got)
			}
			got++
			continue
		case err := <-slow.closed:
			t.Logf("slow client got %d of %d frames, then: %v", got, sent, err)
		case <-time.After(waitLimit):
			t.Fatal("slow client's connection still open")
		}
		break
	}
	waitFor(t, "slow client to be unregistered", func() bool { return e.hub.Stats().ConnectionsCurrent == int64(1+e.syncClients()) })
	st := e.hub.Stats()
	if st.DroppedSlow == 0 || st.Delivered < uint64(sent+20) {
		t.Fatalf("stats %+v", st)
	}
}

func TestPingKeepsIdleConnectionAlive(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PongTimeout = 300 * time.Millisecond // a loaded machine may answer late
	}, false)
	// The handler is set before the reader starts: the first ping may come at once.
	c := e.dialWith(e.wsURL("/bokeh/sub"), nil, false)
	pings := make(chan struct{}, 1000)
	c.conn.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go c.readAll()
	c.mustSubscribe("bokehuser:idle", nil)
	// Idle for about four read timeouts' worth of pings.
	for i := range 60 {
		select {
		case <-pings:
		case <-time.After(waitLimit):
			t.Fatalf("only %d pings", i)
		}
	}
	e.syncRoute()
	e.publish("bokehuser:idle", `{"msgtype": "docchange"}`)
	c.expect(`bokehuser:idle:{"msgtype": "docchange"}`)
	if st := e.hub.Stats(); st.ConnectionsTotal != uint64(st.ConnectionsCurrent) {
		t.Fatalf("a connection was dropped: %+v", st)
	}
}

func TestNoPongCloses(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PongTimeout = 50 * time.Millisecond
	}, false)
	c := e.dialWith(e.wsURL("/bokeh/sub"), nil, false) // never reads, so never answers pings
	_ = c
	waitFor(t, "connection without pongs to close", func() bool {
		st := e.hub.Stats()
		return st.ConnectionsTotal == 1 && st.ConnectionsCurrent == 0
	})
}

func TestOriginAllowList(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://plots.example.org/"} }, false)
	ok := e.dialWith(e.wsURL("/bokeh/sub"), http.Header{"Origin": {"https://PLOTS.example.org"}}, true)
	ok.mustSubscribe("bokehuser:x", nil)
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL("/bokeh/sub"), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v, response %v", err, resp)
	}

	open := newEnv(t, nil, false)
	any := open.dialWith(open.wsURL("/bokeh/sub"), http.Header{"Origin": {"https://evil.example"}}, true)
	any.mustSubscribe("bokehuser:x", nil)
}

func TestDrainClosesWithGoingAway(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DrainTimeout = 100 * time.Millisecond }, false)
	var clients []*wsClient
	for range 20 {
		c := e.dial()
		c.mustSubscribe("bokehplot:doc1", "read1")
		clients = append(clients, c)
	}
	if err := e.hub.Shutdown(contextWithTimeout(t, waitLimit)); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		err := c.waitClosed()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "going away" {
			t.Fatalf("client %d: %v, want close 1001 going away", i, err)
		}
	}
	if st := e.hub.Stats(); st.ConnectionsCurrent != 0 {
		t.Fatalf("after drain: %+v", st)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(e.wsURL("/bokeh/sub"), nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("dial while draining: %v %v (want 503 with Retry-After)", err, resp)
	}
}

// TestConnectionLimit: beyond MaxConnections a handshake is refused with 503 and a retry
// hint, before the process runs out of open files; a closed connection frees its place.
func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnections = 2 }, false)
	a, b := e.dial(), e.dial()
	a.mustSubscribe("bokehuser:x", nil)
	b.mustSubscribe("bokehuser:x", nil)
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL("/bokeh/sub"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third connection: %v %v, want 503 with Retry-After 1", err, resp)
	}
	if got := e.hub.Stats().RefusedFull; got != 1 {
		t.Fatalf("refused_full %d, want 1", got)
	}
	a.conn.Close()
	waitFor(t, "the closed connection to be forgotten", func() bool { return e.hub.Stats().ConnectionsCurrent == 1 })
	e.dial().mustSubscribe("bokehuser:x", nil)
}
