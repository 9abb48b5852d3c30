package wshub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bokeh-go/bokeh-server/api/workerapi"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/broker/brokertest"
)

// waitLimit bounds every wait; it is generous so that slow machines and the race detector
// never fail a test, and it bounds rather than asserts durations.
const (
	waitLimit = 20 * time.Second
	probeGap  = 20 * time.Millisecond
	secret    = "test-secret"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeAPI answers the internal doc-keys and user-topic endpoints like bokeh-server does.
// User topics are open unless users names the auth a user's topic needs (multi-user).
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	docs     map[string]workerapi.DocKeys
	users    map[string]string
	requests atomic.Int64
}

func newFakeAPI(t testing.TB, docs map[string]workerapi.DocKeys) *fakeAPI {
	a := &fakeAPI{docs: docs, users: map[string]string{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		if r.Header.Get(workerapi.InternalTokenHeader) != workerapi.InternalToken(secret) {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		if name, ok := strings.CutPrefix(r.URL.Path, "/"+workerapi.UserTopicPath); ok {
			a.mu.Lock()
			want, multi := a.users[name]
			a.mu.Unlock()
			if multi && (want == "" || r.Header.Get(workerapi.SubscribeAuthHeader) != want) {
				http.Error(w, "no credentials", http.StatusForbidden)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		docid, ok := strings.CutPrefix(r.URL.Path, "/"+workerapi.DocKeysPath)
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		keys, ok := a.docs[docid]
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(keys)
	}))
	t.Cleanup(a.Close)
	return a
}

// env is a worker hub fed by an in-memory subscriber (unit tests) or by a ZMQPublisher over
// real ZeroMQ (integration tests), with a fake API behind it.
type env struct {
	t    testing.TB
	hub  *Hub
	pub  *broker.ZMQPublisher   // ZeroMQ envs
	mem  *brokertest.Subscriber // in-memory envs
	api  *fakeAPI
	srv  *httptest.Server
	sync *wsClient
	seq  atomic.Int64
}

var testDocs = map[string]workerapi.DocKeys{
	"doc1": {APIKey: "write1", ReadOnlyAPIKey: "read1"},
	"doc2": {APIKey: "write2", ReadOnlyAPIKey: "read2"},
	"abc":  {APIKey: "kabc", ReadOnlyAPIKey: "rabc"},
	"abcd": {APIKey: "kabcd", ReadOnlyAPIKey: "rabcd"},
}

// smallBuffers shrinks the kernel send buffer of accepted connections so that a client
// that stops reading backs up into the hub's queue after kilobytes, not megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// newEnv starts a hub fed by an in-memory subscriber.
func newEnv(t testing.TB, configure func(*Config), small bool) *env {
	t.Helper()
	return startEnv(t, configure, small, false)
}

// newZMQEnv starts a hub fed over real ZeroMQ, for what depends on the wiring
// (acknowledgements, reconnections).
func newZMQEnv(t testing.TB, configure func(*Config), small bool) *env {
	t.Helper()
	return startEnv(t, configure, small, true)
}

func startEnv(t testing.TB, configure func(*Config), small, viaZMQ bool) *env {
	t.Helper()
	e := &env{t: t, api: newFakeAPI(t, testDocs)}
	cfg := Config{APIURL: e.api.URL, SecretKey: secret, Logger: quietLogger(), DrainTimeout: -1}
	var err error
	if viaZMQ {
		e.pub, err = broker.NewZMQPublisher("tcp://127.0.0.1:*", broker.Bind, broker.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.pub.Close() })
		cfg.ZMQAddr = e.pub.Endpoint()
	} else {
		cfg.NewSubscriber = func(deliver func([]broker.Message) bool, loss func(broker.Loss)) (Subscriber, error) {
			e.mem = brokertest.NewSubscriber(deliver, loss)
			return e.mem, nil
		}
	}
	if configure != nil {
		configure(&cfg)
	}
	if e.hub, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.hub.Handler(""))
	if small {
		e.srv.Listener = smallBuffers{e.srv.Listener}
	}
	e.srv.Start()
	t.Cleanup(func() {
		e.hub.Shutdown(contextWithTimeout(t, waitLimit))
		e.srv.Close()
	})
	return e
}

func (e *env) wsURL(path string) string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path }

// syncRoute proves that every ZeroMQ subscription the hub made so far has reached the
// publisher: the sync client subscribes last, and subscriptions travel in order.
// syncClients is the number of connections syncRoute made (0 or 1).
func (e *env) syncClients() int {
	if e.sync != nil {
		return 1
	}
	return 0
}

func (e *env) syncRoute() {
	e.t.Helper()
	if e.mem != nil {
		return // the in-memory subscriber has every subscription at once
	}
	if e.sync == nil {
		e.sync = e.dial()
	}
	// A fresh topic each time: only a first subscription reaches ZeroMQ.
	e.sync.topic = fmt.Sprintf("debug:sync%d", e.seq.Add(1))
	e.sync.mustSubscribe(e.sync.topic, nil)
	deadline := time.Now().Add(waitLimit)
	for n := 0; time.Now().Before(deadline); n++ {
		probe := fmt.Sprint("probe", n)
		e.pub.Publish(broker.Message{Topic: e.sync.topic, Payload: []byte(probe)})
		for {
			f, ok := e.sync.nextWithin(probeGap)
			if !ok {
				break
			}
			if f == e.sync.topic+":"+probe {
				return
			}
		}
	}
	e.t.Fatalf("no route to the hub within %s", waitLimit)
}

func (e *env) publish(topic, payload string) {
	m := broker.Message{Topic: topic, Payload: []byte(payload)}
	if e.mem != nil {
		e.mem.Publish(m)
		return
	}
	e.pub.Publish(m)
}

// wsClient is a browser stand-in; its reader goroutine collects frames (and thereby
// answers pings) unless it was dialled with read=false.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan string
	closed chan error // the read error that ended the reader
	id     string
	topic  string
}

func (e *env) dial() *wsClient { return e.dialWith(e.wsURL("/bokeh/sub"), nil, true) }

func (e *env) dialWith(url string, header http.Header, read bool) *wsClient {
	e.t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		e.t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	c := &wsClient{t: e.t, conn: conn, frames: make(chan string, 100000), closed: make(chan error, 1)}
	e.t.Cleanup(func() { conn.Close() })
	if read {
		go c.readAll()
	}
	return c
}

func (c *wsClient) readAll() {
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.closed <- err
			return
		}
		c.frames <- string(data)
	}
}

func (c *wsClient) send(s string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *wsClient) subscribe(topic string, auth any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"msgtype": "subscribe", "topic": topic, "auth": auth})
	c.send(string(b))
}

// mustSubscribe subscribes and checks the 0.8.2 success reply, remembering the client id.
func (c *wsClient) mustSubscribe(topic string, auth any) {
	c.t.Helper()
	c.subscribe(topic, auth)
	f := c.next()
	prefix := topic + `:{"msgtype": "status", "status": ["subscribesuccess", "` + topic + `", "`
	id, ok := strings.CutPrefix(f, prefix)
	if !ok || !strings.HasSuffix(id, `"]}`) {
		c.t.Fatalf("subscribe %s: got %q", topic, f)
	}
	c.id = strings.TrimSuffix(id, `"]}`)
}

func (c *wsClient) next() string {
	c.t.Helper()
	f, ok := c.nextWithin(waitLimit)
	if !ok {
		c.t.Fatalf("no frame within %s", waitLimit)
	}
	return f
}

func (c *wsClient) nextWithin(d time.Duration) (string, bool) {
	select {
	case f := <-c.frames:
		return f, true
	case <-time.After(d):
		return "", false
	}
}

func (c *wsClient) expect(want string) {
	c.t.Helper()
	if got := c.next(); got != want {
		c.t.Fatalf("got frame %q, want %q", got, want)
	}
}

func (c *wsClient) expectEmpty() {
	c.t.Helper()
	select {
	case f := <-c.frames:
		c.t.Fatalf("unexpected frame %q", f)
	default:
	}
}

// waitClosed waits for the reader to end and returns its error.
func (c *wsClient) waitClosed() error {
	c.t.Helper()
	select {
	case err := <-c.closed:
		return err
	case <-time.After(waitLimit):
		c.t.Fatalf("connection still open after %s", waitLimit)
		return nil
	}
}

// waitFor polls cond, bounded in time.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contextWithTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
