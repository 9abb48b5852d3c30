package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/bokeh-go/bokeh-server/api/apitest"
)

// The clock is CLOCK_MONOTONIC in nanoseconds, read through Go's monotonic clock (the same
// clock, without a system call) from one calibration, so that times taken here and in the
// limits' child processes compare.
var (
	clockBase time.Time
	monoBase  int64
)

func init() {
	var ts unix.Timespec
	t1 := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	t2 := time.Now()
	clockBase = t1.Add(t2.Sub(t1) / 2)
	monoBase = ts.Nano()
}

func now() int64 { return monoBase + int64(time.Since(clockBase)) }

// apiClient talks to the API like the Python client (single-user defaults).
type apiClient struct {
	root string
	http *http.Client
}

func newAPIClient(root string, conns int) *apiClient {
	tr := &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2,
		DisableCompression: true, IdleConnTimeout: time.Minute}
	return &apiClient{root: root, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *apiClient) close() { a.http.CloseIdleConnections() }

// do sends a request with the Python session's headers; out, when not nil, receives the
// body (else it is discarded).
func (a *apiClient) do(method, rel string, body []byte, out *[]byte) (int, error) {
	req, err := http.NewRequest(method, a.root+rel, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("BOKEHUSER", "defaultuser")
	req.Header.Set("BOKEHUSER-API-KEY", "nokey")
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		*out, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, err
}

func (a *apiClient) getJSON(rel string, v any) error {
	var b []byte
	st, err := a.do("GET", rel, nil, &b)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("GET %s: %d %.200s", rel, st, b)
	}
	return json.Unmarshal(b, v)
}

// benchDoc is a document made for the benchmark.
type benchDoc struct {
	id      string
	topic   string
	readKey string // what BokehJS subscribes with
	api     *apiClient
}

// makeDoc creates a document titled title and fetches its keys.
func (a *apiClient) makeDoc(title string) (*benchDoc, error) {
	body, _ := json.Marshal(map[string]string{"title": title})
	var out []byte
	st, err := a.do("POST", "bokeh/doc/", body, &out)
	if err != nil {
		return nil, fmt.Errorf("make doc: %w", err)
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("make doc: %d %.200s", st, out)
	}
	var info struct {
		Docs []struct{ DocID, Title string } `json:"docs"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("make doc: %w", err)
	}
	d := &benchDoc{api: a}
	for _, doc := range info.Docs {
		if doc.Title == title {
			d.id = doc.DocID
		}
	}
	if d.id == "" {
		return nil, fmt.Errorf("make doc: %q not listed", title)
	}
	d.topic = "bokehplot:" + d.id
	var keys struct {
		APIKey string `json:"apikey"`
	}
	if err := a.getJSON("bokeh/bokehinfo/"+d.id+"/", &keys); err != nil {
		return nil, err
	}
	d.readKey = keys.APIKey
	return d, nil
}

// push stores models (a bulkupsert body).
func (d *benchDoc) push(body []byte) error {
	var out []byte
	st, err := d.api.do("POST", "bokeh/bb/"+d.id+"/bulkupsert", body, &out)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("bulkupsert: %d %.300s", st, out)
	}
	return nil
}

// post sends one bulkupsert and discards the answer.
func (d *benchDoc) post(body []byte) error {
	st, err := d.api.do("POST", "bokeh/bb/"+d.id+"/bulkupsert", body, nil)
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("bulkupsert: status %d", st)
	}
	return err
}

// Update bodies. Every model the benchmark updates has "seq" as its first attribute (it is
// stored that way by the first write, and merges keep the stored order), so that a reader
// finds the sequence number in the first bytes of the frame.

const seqSourceID = "bench-source"

// sourceBodies is the Python client's store_objects(source) of an n-point
// ColumnDataSource (apitest.SourceUpdate) with "seq" first: prefix + seq + suffix.
type sourceBodies struct {
	prefix, suffix [][]byte
}

func newSourceBodies(docid string, points, variants int) (*sourceBodies, error) {
	b := &sourceBodies{}
	src := apitest.Model{Type: "ColumnDataSource", ID: seqSourceID}
	for v := range variants {
		body := string(apitest.SourceUpdate(docid, src, points, float64(v)/10))
		pre, post, ok := strings.Cut(body, `"attributes": {`)
		if !ok {
			return nil, errors.New("unexpected SourceUpdate body")
		}
		b.prefix = append(b.prefix, []byte(pre+`"attributes": {"seq": `))
		b.suffix = append(b.suffix, []byte(", "+post))
	}
	return b, nil
}

func (b *sourceBodies) body(buf []byte, seq uint64) []byte {
	v := int(seq % uint64(len(b.prefix)))
	buf = append(buf[:0], b.prefix[v]...)
	buf = strconv.AppendUint(buf, seq, 10)
	return append(buf, b.suffix[v]...)
}

// initialPlot is the 26-model plot of apitest.NewPlot with the benchmark's source (seq 0)
// in place of its own, as show() stores it.
func initialPlot(d *benchDoc, src *sourceBodies) ([]byte, error) {
	ctxID := "bench-context"
	plot := apitest.NewPlot(d.id, ctxID, 10)
	var parts []string
	for _, m := range plot.Models {
		if m.ID == plot.Source.ID {
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		// Renderers and ranges point at the benchmark's source instead.
		parts = append(parts, strings.ReplaceAll(string(b), plot.Source.ID, seqSourceID))
	}
	first := src.body(nil, 0)
	parts = append(parts, string(first[1:len(first)-1]))
	return []byte("[" + strings.Join(parts, ", ") + "]"), nil
}

// smallBodies are fan-out updates: one model whose modelpush frame, as a worker sends it,
// is frameBytes long.
type smallBodies struct {
	docid string
	pad   string
}

// fanFrame is the websocket frame a worker sends for a fan-out update.
func fanFrame(docid string, seq uint64, pad string) []byte {
	b := []byte("bokehplot:" + docid + `:{"msgtype": "modelpush", "modelspecs": [`)
	b = fanModel(b, docid, seq, pad)
	return append(b, "]}"...)
}

func fanModel(b []byte, docid string, seq uint64, pad string) []byte {
	b = append(b, `{"type": "ColumnDataSource", "id": "`+seqSourceID+`", "attributes": {"seq": `...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `, "pad": "`...)
	b = append(b, pad...)
	return append(b, `", "id": "`+seqSourceID+`", "doc": "`+docid+`"}}`...)
}

func newSmallBodies(docid string, frameBytes int) *smallBodies {
	overhead := len(fanFrame(docid, 100000, ""))
	return &smallBodies{docid: docid, pad: strings.Repeat("x", max(frameBytes-overhead, 0))}
}

func (s *smallBodies) body(buf []byte, seq uint64) []byte {
	buf = append(buf[:0], '[')
	buf = fanModel(buf, s.docid, seq, s.pad)
	return append(buf, ']')
}

// sample is one frame received by one subscriber.
type sample struct {
	seq  uint64
	recv int64 // clock at the end of the frame
}

// tracker counts, per sequence number, how many subscribers have received it, so that a
// publisher can keep a bounded number of messages in flight.
type tracker struct {
	subs      int32
	lo        uint64 // first sequence number of the phase
	ring      []atomic.Int32
	completed atomic.Int64
	received  atomic.Int64
	signal    chan struct{}
}

const trackerRing = 1 << 18

func newTracker(subs int, lo uint64) *tracker {
	return &tracker{subs: int32(subs), lo: lo, ring: make([]atomic.Int32, trackerRing),
		signal: make(chan struct{}, 1)}
}

func (t *tracker) got(seq uint64) {
	if seq < t.lo {
		return
	}
	t.received.Add(1)
	c := &t.ring[seq%trackerRing]
	if c.Add(1) == t.subs {
		c.Store(0)
		t.completed.Add(1)
		select {
		case t.signal <- struct{}{}:
		default:
		}
	}
}

// subscriber is one websocket client that records every frame carrying a sequence number.
type subscriber struct {
	conn    *websocket.Conn
	track   atomic.Pointer[tracker]
	mu      sync.Mutex
	samples []sample
	keep    bool // record samples (else only count)
	done    chan struct{}
	err     error
	// closeCode is the code of the server's close frame (0: none came); read after done.
	closeCode int
}

var dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}

// dialSubscriber opens a websocket to url and, unless topic is empty, subscribes like
// BokehJS and waits for subscribesuccess. The reader starts at once.
func dialSubscriber(url, topic, auth string) (*subscriber, error) {
	return dialSubscriberWith(context.Background(), dialer, url, topic, auth, 15*time.Second, nil)
}

// dialSubscriberWith is dialSubscriber through d, within ctx, waiting at most replyWait for
// the subscribe's answer; opened, when not nil, is called once the websocket is open.
//
// Ending ctx ends the attempt at any point until the subscriber is returned: gorilla's
// handshake only heeds its HandshakeTimeout, so the connection is closed under it (a
// storm's end must not wait for a server that accepted a socket and never answered).
func dialSubscriberWith(ctx context.Context, d *websocket.Dialer, url, topic, auth string, replyWait time.Duration, opened func()) (*subscriber, error) {
	var mu sync.Mutex
	var nc net.Conn
	ended := false
	dd := *d
	netDial := d.NetDialContext
	if netDial == nil {
		netDial = (&net.Dialer{}).DialContext
	}
	dd.NetDialContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netDial(dctx, network, addr)
		if err == nil {
			mu.Lock()
			nc = c
			if ended {
				c.Close()
			}
			mu.Unlock()
		}
		return c, err
	}
	cut := context.AfterFunc(ctx, func() {
		mu.Lock()
		ended = true
		if nc != nil {
			nc.Close()
		}
		mu.Unlock()
	})
	defer cut()
	conn, resp, err := dd.DialContext(ctx, url, http.Header{"Origin": {"http://127.0.0.1"}})
	if err != nil {
		return nil, &dialError{url: url, resp: resp, err: err}
	}
	resp.Body.Close()
	if opened != nil {
		opened()
	}
	if topic != "" {
		msg, _ := json.Marshal(map[string]any{"msgtype": "subscribe", "topic": topic, "auth": auth})
		conn.SetWriteDeadline(time.Now().Add(replyWait))
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		// A ping while the answer is awaited: gorilla's own handler gives its pong one
		// second, which a busy load generator may miss, failing the subscribe.
		conn.SetPingHandler(func(data string) error {
			conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(replyWait))
			return nil
		})
		conn.SetReadDeadline(time.Now().Add(replyWait))
		_, reply, err := conn.ReadMessage()
		if err != nil || !bytes.Contains(reply, []byte("subscribesuccess")) {
			conn.Close()
			return nil, &subscribeError{topic: topic, reply: reply, err: err}
		}
		conn.SetReadDeadline(time.Time{})
	}
	if !cut() {
		conn.Close()
		return nil, &subscribeError{topic: topic, err: ctx.Err()}
	}
	s := &subscriber{conn: conn, done: make(chan struct{}), keep: true}
	go s.read()
	return s, nil
}

// read is the reader of every benchmark client (workers and the raw broadcaster alike). It
// reads the socket itself, once per readiness, into a shared buffer: reading through
// net.Conn (as gorilla does) reads until EAGAIN, two read calls per frame at fan-out rates,
// and at 1,000 subscribers that made the load generator, not the servers, the bound.
//
// A read that returns less than the buffer has emptied the socket, so the next data comes
// with a new edge of the runtime's edge-triggered poller: waiting then cannot miss any.
// gorilla read the handshake and the subscribe answer; servers send nothing more unasked,
// so its buffer is empty when this starts.
func (s *subscriber) read() {
	defer close(s.done)
	sc, ok := s.conn.NetConn().(syscall.Conn)
	if !ok {
		s.err = errors.New("websocket connection has no file descriptor")
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		s.err = err
		return
	}
	var split frameSplitter
	var t int64
	onMessage := func(head []byte) { s.received(head, t) }
	onControl := func(op byte, payload []byte) error {
		switch op {
		case opPing:
			return s.conn.WriteControl(websocket.PongMessage, payload, time.Now().Add(10*time.Second))
		case opClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			s.closeCode = code
			return fmt.Errorf("server closed the websocket (code %d)", code)
		}
		return nil
	}
	var failed error
	err = rc.Read(func(fd uintptr) bool {
		bp := readBuffers.Get().(*[]byte)
		defer readBuffers.Put(bp)
		for {
			n, err := unix.Read(int(fd), *bp)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				failed = err
				return true
			case n == 0:
				failed = io.EOF
				return true
			}
			t = now()
			if failed = split.feed((*bp)[:n], onMessage, onControl); failed != nil {
				return true
			}
			if n < len(*bp) {
				return false
			}
		}
	})
	if s.err = failed; s.err == nil {
		s.err = err
	}
}

// readBuffers hold one read of the readers (the load generator runs on one CPU, so few are
// in use at once); 256 KB takes a 61 KB update frame, or a backlog of fan-out frames, in one.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// received records a message whose payload begins with head and whose last byte arrived at t.
func (s *subscriber) received(head []byte, t int64) {
	seq, ok := parseSeq(head)
	if !ok {
		return
	}
	if tr := s.track.Load(); tr != nil {
		if seq < tr.lo {
			return
		}
		tr.got(seq)
	}
	if s.keep {
		s.mu.Lock()
		s.samples = append(s.samples, sample{seq: seq, recv: t})
		s.mu.Unlock()
	}
}

// take returns the samples recorded so far and forgets them.
func (s *subscriber) take() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

func (s *subscriber) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *subscriber) close() {
	s.conn.Close()
	<-s.done
}

var seqKey = []byte(`"seq": `)

// parseSeq finds "seq": N near the start of a frame.
func parseSeq(frame []byte) (seq uint64, ok bool) {
	head := frame[:min(len(frame), 512)]
	i := bytes.Index(head, seqKey)
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(seqKey):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		seq = seq*10 + uint64(rest[n]-'0')
		n++
	}
	return seq, n > 0
}

// dialError is a failed websocket dial; resp is the refusal of a failed handshake (its body
// closed), else nil.
type dialError struct {
	url  string
	resp *http.Response
	err  error
}

func (e *dialError) Error() string {
	if e.resp != nil {
		return fmt.Sprintf("dial %s: %v (status %d)", e.url, e.err, e.resp.StatusCode)
	}
	return fmt.Sprintf("dial %s: %v", e.url, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

// subscribeError is a subscribe that got no subscribesuccess.
type subscribeError struct {
	topic string
	reply []byte
	err   error
}

func (e *subscribeError) Error() string {
	return fmt.Sprintf("subscribe %s: %q %v", e.topic, e.reply, e.err)
}

// dialMany opens n subscribers over urls (round robin), a few at a time.
func dialMany(n int, urls []string, topic, auth string) ([]*subscriber, error) {
	subs := make([]*subscriber, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := dialSubscriber(urls[i%len(urls)], topic, auth)
			if err != nil {
				errs <- err
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(subs)
		return nil, err
	}
	return subs, nil
}

func closeAll(subs []*subscriber) {
	var wg sync.WaitGroup
	for _, s := range subs {
		if s != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.close() }()
		}
	}
	wg.Wait()
}
