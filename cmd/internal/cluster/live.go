package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Reconnection timing of our pages (api/web/static/live.js): the first retry after 250 ms,
// doubling to 10 s, each with up to 30 % jitter; after a resync close (4001) the first
// attempt comes within 250 ms.
const (
	liveBackoffFirst = 250 * time.Millisecond
	liveBackoffMax   = 10 * time.Second
	liveResyncSpread = 250 * time.Millisecond
	// CloseResync is the close code of a worker's resync (cmd/ws-worker/wshub).
	CloseResync = 4001
)

// LiveOptions describe a LiveClient.
type LiveOptions struct {
	Root  string // API root ending in '/': bokeh/wsurl/ and bokeh/bokehinfo/
	URL   string // websocket URL of the first connection; "" asks wsurl
	Topic string // one topic, e.g. bokehplot:<docid>
	Auth  string
	// Reconnect makes the client behave like our pages when the socket closes: ask wsurl
	// again with backoff, reconnect, resubscribe, reload the document over HTTP and then
	// apply the pushes that arrived meanwhile.
	Reconnect bool
	// Reload lists streams whose state is loaded over bokehinfo after every subscribe
	// (after each reconnect at least; also at the first connection when ReloadFirst).
	Reload      []Stream
	ReloadFirst bool
	// ReloadEarly starts the reload as soon as the subscribe frame is sent, as
	// api/web/static/live.js does, instead of after subscribesuccess. A write published
	// before the worker's subscription took effect but stored after the reload read the
	// document is then missed until the next push (the validator reports it).
	ReloadEarly bool
	Log         *ClientLog // receives every frame; required
	HTTP        *http.Client
	Dialer      *websocket.Dialer
	// GiveUp bounds the time spent reconnecting after one close (default 30 s).
	GiveUp time.Duration
}

// LiveClient is a websocket client that records every frame into a ClientLog and,
// optionally, reconnects like our pages do. Unlike WSClient it keeps no frame buffer, so
// thousands of them are cheap, and it needs no testing.TB (it may be used from goroutines).
type LiveClient struct {
	o LiveOptions

	mu         sync.Mutex
	conn       *websocket.Conn
	url        string
	closing    bool
	reconnects int
	lastUp     time.Time // when the last reconnection completed
	failures   int       // failed reconnection attempts
	err        error
	done       chan struct{}
}

// subscribeWait bounds the wait for a subscribe reply.
const subscribeWait = 15 * time.Second

// sharedHTTP is the default client of LiveClients: many connections to one API.
var sharedHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	MaxIdleConnsPerHost: 64, MaxConnsPerHost: 128, IdleConnTimeout: 30 * time.Second}}

// CloseIdleConnections closes the idle HTTP connections of LiveClients' default client.
// Go's transport may dial a connection it then never uses; a server being stopped waits
// up to 5 s for such a connection to send its first request.
func CloseIdleConnections() { sharedHTTP.CloseIdleConnections() }

// DialLive connects, subscribes (failing unless the reply is subscribesuccess), reloads if
// asked, and starts reading.
func DialLive(ctx context.Context, o LiveOptions) (*LiveClient, error) {
	if o.HTTP == nil {
		o.HTTP = sharedHTTP
	}
	if o.Dialer == nil {
		o.Dialer = &websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	}
	if o.GiveUp == 0 {
		o.GiveUp = 30 * time.Second
	}
	c := &LiveClient{o: o, done: make(chan struct{})}
	url := o.URL
	if url == "" {
		var err error
		if url, err = c.wsurl(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.connect(ctx, url, o.ReloadFirst); err != nil {
		return nil, err
	}
	go c.run()
	return c, nil
}

// wsurl is GET bokeh/wsurl/.
func (c *LiveClient) wsurl(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.o.Root+"bokeh/wsurl/", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("wsurl: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("wsurl: %d %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// connect dials url, subscribes and waits for the reply (keeping pushes that come first),
// reloads the streams over HTTP when reload is set, and applies the kept pushes after it.
func (c *LiveClient) connect(ctx context.Context, url string, reload bool) error {
	conn, resp, err := c.o.Dialer.DialContext(ctx, url, http.Header{"Origin": {"http://127.0.0.1"}})
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	resp.Body.Close()
	msg, _ := json.Marshal(map[string]any{"msgtype": "subscribe", "topic": c.o.Topic, "auth": c.o.Auth})
	if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		conn.Close()
		return fmt.Errorf("subscribe %s: %w", c.o.Topic, err)
	}
	c.o.Log.Connected()
	reload = reload && len(c.o.Reload) > 0
	var early chan error
	if reload && c.o.ReloadEarly {
		early = make(chan error, 1)
		go func() { early <- c.reload(ctx) }()
	}
	var queue []string
	var queuedAt []time.Time
	_ = conn.SetReadDeadline(time.Now().Add(subscribeWait))
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			if early != nil {
				<-early
			}
			return fmt.Errorf("waiting for the subscribe reply on %s: %w", url, err)
		}
		frame := string(b)
		if strings.HasPrefix(frame, c.o.Topic+":{\"msgtype\": \"status\"") || strings.HasPrefix(frame, c.o.Topic+":{\"msgtype\": \"error\"") {
			if !strings.Contains(frame, "subscribesuccess") {
				conn.Close()
				if early != nil {
					<-early
				}
				return fmt.Errorf("subscribe %s on %s: %s", c.o.Topic, url, frame)
			}
			c.o.Log.Subscribed(c.o.Topic)
			c.o.Log.Frame(frame)
			break
		}
		queue, queuedAt = append(queue, frame), append(queuedAt, time.Now())
	}
	_ = conn.SetReadDeadline(time.Time{})
	if reload {
		var err error
		if early != nil {
			err = <-early
		} else {
			err = c.reload(ctx)
		}
		if err != nil {
			conn.Close()
			return err
		}
	}
	for i, f := range queue {
		c.o.Log.FrameAt(f, queuedAt[i])
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		conn.Close()
		return errClosing
	}
	c.conn, c.url = conn, url
	c.mu.Unlock()
	return nil
}

var errClosing = errors.New("client closed")

// reload fetches the document over bokehinfo, as a page does, and applies the streams'
// states.
func (c *LiveClient) reload(ctx context.Context) error {
	docs := map[string]bool{}
	for _, s := range c.o.Reload {
		docs[strings.TrimPrefix(s.Topic, "bokehplot:")] = true
	}
	for docid := range docs {
		req, err := http.NewRequestWithContext(ctx, "GET", c.o.Root+"bokeh/bokehinfo/"+docid+"/", nil)
		if err != nil {
			return err
		}
		resp, err := c.o.HTTP.Do(req)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var info struct {
			AllModels []struct {
				ID         string `json:"id"`
				Attributes struct {
					Seq *int64 `json:"seq"`
				} `json:"attributes"`
			} `json:"all_models"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &info) != nil {
			return fmt.Errorf("reload %s: %d %.200s", docid, resp.StatusCode, b)
		}
		for _, m := range info.AllModels {
			for _, s := range c.o.Reload {
				if s.ID == m.ID && s.Topic == "bokehplot:"+docid && m.Attributes.Seq != nil {
					c.o.Log.Reloaded(s, *m.Attributes.Seq)
				}
			}
		}
	}
	return nil
}

// run reads frames until the connection ends, then reconnects or stops.
func (c *LiveClient) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		var err error
		for {
			var b []byte
			if _, b, err = conn.ReadMessage(); err != nil {
				break
			}
			c.o.Log.Frame(string(b))
		}
		conn.Close()
		code := websocket.CloseAbnormalClosure
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			code = ce.Code
		}
		c.mu.Lock()
		closing := c.closing
		c.err = err
		c.mu.Unlock()
		if closing {
			return
		}
		c.o.Log.Closed(code)
		if !c.o.Reconnect || !c.reconnect(code == CloseResync) {
			return
		}
	}
}

// reconnect is live.js's loop: wait, ask wsurl, open, resubscribe, reload, apply. It
// reports whether a new connection is up.
func (c *LiveClient) reconnect(resync bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.GiveUp)
	defer cancel()
	delay := liveBackoffFirst
	for {
		wait := delay + time.Duration(rand.Float64()*0.3*float64(delay))
		if resync {
			wait, resync = time.Duration(rand.Float64()*float64(liveResyncSpread)), false
		}
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.err = fmt.Errorf("gave up reconnecting after %v: %w", c.o.GiveUp, c.err)
			c.mu.Unlock()
			return false
		case <-time.After(wait):
		}
		if c.isClosing() {
			return false
		}
		next := min(2*delay, liveBackoffMax)
		url, err := c.wsurl(ctx)
		if err == nil {
			err = c.connect(ctx, url, true)
		}
		if errors.Is(err, errClosing) {
			return false
		}
		if err == nil {
			c.mu.Lock()
			c.reconnects++
			c.lastUp = time.Now()
			c.mu.Unlock()
			return true
		}
		c.mu.Lock()
		c.failures++
		c.mu.Unlock()
		delay = next
	}
}

func (c *LiveClient) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Close closes the connection and stops reconnecting; it waits for the reader to end.
func (c *LiveClient) Close() {
	c.mu.Lock()
	c.closing = true
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	select {
	case <-c.done:
	case <-time.After(c.o.GiveUp + 5*time.Second):
	}
}

// Done is closed when the client stopped for good (closed, or ended without Reconnect).
func (c *LiveClient) Done() <-chan struct{} { return c.done }

// Reconnects is how many times the client reconnected; Failures how many attempts failed.
func (c *LiveClient) Reconnects() (ok, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects, c.failures
}

// LastReconnect is when the last reconnection completed (zero if none).
func (c *LiveClient) LastReconnect() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastUp
}

// Err is the error that ended the last connection.
func (c *LiveClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// URL is the websocket URL of the current connection.
func (c *LiveClient) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url
}

// Port is the port of the current connection's URL.
func (c *LiveClient) Port() int { return URLPort(c.URL()) }

// URLPort is the port of a ws:// or http:// URL, or 0.
func URLPort(u string) int {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return 0
	}
	hostport, _, _ := strings.Cut(rest, "/")
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return p
}

// StalledClient subscribes and then never reads: a browser tab that froze. Its socket's
// receive buffer is small, so the worker's writes back up quickly.
type StalledClient struct {
	conn *websocket.Conn
}

// DialStalled connects to url, sends a subscribe frame for topic, and never reads.
func DialStalled(tb testing.TB, url, topic, auth string) *StalledClient {
	tb.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024,
		NetDial: func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				}); err != nil {
					return err
				}
				return serr
			}}
			return nd.Dial(network, addr)
		}}
	conn, resp, err := d.Dial(url, http.Header{"Origin": {"http://127.0.0.1"}})
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	msg, _ := json.Marshal(map[string]any{"msgtype": "subscribe", "topic": topic, "auth": auth})
	if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		tb.Fatalf("stalled subscribe: %v", err)
	}
	s := &StalledClient{conn: conn}
	tb.Cleanup(func() { conn.Close() })
	return s
}

// Close closes the stalled client's socket.
func (s *StalledClient) Close() { s.conn.Close() }

// WorkerStats is the part of a worker's /stats the tests read.
type WorkerStats struct {
	ConnectionsCurrent int64  `json:"connections_current"`
	ConnectionsTotal   uint64 `json:"connections_total"`
	Subscriptions      int64  `json:"subscriptions"`
	ZMQTopics          int    `json:"zmq_topics"`
	ZMQReceived        uint64 `json:"zmq_received"`
	ZMQAcks            uint64 `json:"zmq_acks"`
	Unwatched          uint64 `json:"unwatched"`
	Delivered          uint64 `json:"delivered"`
	Dropped            uint64 `json:"dropped"`
	DroppedSlow        uint64 `json:"dropped_slow_client"`
	SlowClientCloses   uint64 `json:"slow_client_closes"`
	AuthFailures       uint64 `json:"auth_failures"`
	AckTimeouts        uint64 `json:"subscribe_ack_timeouts"`
	ZMQHeartbeats      uint64 `json:"zmq_heartbeats"`
	ZMQHellos          uint64 `json:"zmq_hellos"`
	ZMQReconnects      uint64 `json:"zmq_reconnects"`
	// Resyncs counts losses the worker detected, by reason (gap, tail, epoch, reconnect).
	Resyncs      map[string]uint64 `json:"resyncs"`
	ResyncCloses uint64            `json:"resync_closes"`
}

// GetWorkerStats reads http://127.0.0.1:port/stats.
func GetWorkerStats(tb testing.TB, port int) WorkerStats {
	tb.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/stats")
	if err != nil {
		tb.Fatalf("worker :%d /stats: %v", port, err)
	}
	defer resp.Body.Close()
	var s WorkerStats
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &s) != nil {
		tb.Fatalf("worker :%d /stats: %d %.200s", port, resp.StatusCode, b)
	}
	return s
}

// StartBalancer runs a TCP round-robin balancer on a free loopback port in front of the
// given ports (websockets pass through unchanged, like nginx's stream balancing); it stops
// when the test ends. It returns the balancer's port.
func StartBalancer(tb testing.TB, backends ...int) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(backends[i%len(backends)]))
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port
}
