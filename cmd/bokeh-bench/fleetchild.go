package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/bokeh-go/bokeh-server/cmd/internal/cpuprofile"
)

// The scale scenarios' load generator runs in child processes of this program
// ("internal-clients"): one process may hold only as many sockets as the open-files limit
// allows, and each binds its sockets to a loopback source address of its own (127.0.0.2,
// 127.0.0.3, ...), so that no address runs out of ephemeral ports. The parent sends one JSON
// request per line on stdin and reads one JSON answer per line on stdout; stdin closing
// ends the child.

// fleetReq is one request to a load-generator child.
type fleetReq struct {
	Cmd string `json:"cmd"`
	// dial: open these viewers, Conc at a time.
	Viewers []viewerSpec `json:"viewers,omitempty"`
	Conc    int          `json:"conc,omitempty"`
	// collect: the updates to account for.
	Updates []updateSent `json:"updates,omitempty"`
	// storm: how viewers reconnect (live.js).
	Storm *stormModel `json:"storm,omitempty"`
	// stormstat: every time and duration, not only the counts.
	Full bool `json:"full,omitempty"`
}

// viewerSpec is N viewers of one document, spread round robin over URLs.
type viewerSpec struct {
	URLs    []string `json:"urls"`
	Topic   string   `json:"topic"`
	Auth    string   `json:"auth"`
	DocID   string   `json:"docid"`
	Group   int      `json:"group"`
	N       int      `json:"n"`
	APIRoot string   `json:"api_root"` // for the storm's wsurl and reload requests
}

// updateSent is one published update: viewers of Group (every viewer when negative) should
// receive Seq; Done is the clock when the writer had the HTTP answer.
type updateSent struct {
	Seq   uint64 `json:"seq"`
	Group int    `json:"group"`
	Done  int64  `json:"done"`
}

// stormModel is how a viewer comes back after its socket closed, as live.js does: wait
// First (a resync close, 4001: a random part of ResyncSpread instead), ask the API for a
// worker (bokeh/wsurl/), open the websocket, resubscribe, and once subscribed reload the
// document (bokeh/bokehinfo/<docid>/); a failed attempt waits twice as long as the last
// (up to Max) plus a random Jitter fraction of it; a failed reload is retried, after the
// Retry-After of a 429 or 503.
type stormModel struct {
	First        time.Duration `json:"first"`
	Max          time.Duration `json:"max"`
	Jitter       float64       `json:"jitter"`
	ResyncSpread time.Duration `json:"resync_spread"`
	ConfirmWait  time.Duration `json:"confirm_wait"`
}

// fleetResp is a child's answer.
type fleetResp struct {
	Err      string `json:"err,omitempty"`
	Opened   int    `json:"opened,omitempty"`
	Failed   int    `json:"failed,omitempty"`
	FirstErr string `json:"first_err,omitempty"`
	Alive    int    `json:"alive"`
	Received int    `json:"received,omitempty"` // frames held, not collected yet
	// collect
	Lat     []int64 `json:"lat,omitempty"` // ns, one per delivery
	Missing int     `json:"missing,omitempty"`
	// stormstat
	Storm *stormStats `json:"storm,omitempty"`
	// CPU is the child's CPU time so far.
	CPU time.Duration `json:"cpu"`
}

// stormStats is what the viewers of one child did since the storm began.
type stormStats struct {
	Closed    int            `json:"closed"` // viewers whose socket closed
	BackCount int            `json:"back_count"`
	Back      []int64        `json:"back"`     // clock when each came back (resubscribed, reloaded); full only
	NotBack   int            `json:"not_back"` // closed and not back yet
	Attempts  int            `json:"attempts"` // reconnection attempts
	Hinted    map[string]int `json:"hinted"`   // refusals with a retry hint (429/503 + Retry-After), by kind
	Failed    map[string]int `json:"failed"`   // every other failure, by kind
	Requests  map[string]int `json:"requests"` // HTTP requests and websocket dials made, by kind
	// Steps are the durations (ns) of the successful steps of reconnections, by step:
	// wsurl, websocket (connect and handshake), subscribe (to subscribesuccess), reload.
	Steps map[string][]int64 `json:"steps"`
}

func clientsChild(args []string) error {
	src := ""
	for i, a := range args {
		if a == "--src" && i+1 < len(args) {
			src = args[i+1]
		}
	}
	defer cpuprofile.Start(slog.Default())()
	debug.SetGCPercent(200) // fewer collections: the heap is mostly live sockets

	f := newFleetChild(src)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 256<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req fleetReq
		var resp fleetResp
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			resp = f.handle(req)
		}
		resp.CPU = cpuSelf()
		if err := out.Encode(resp); err != nil {
			return err
		}
	}
	f.closeAll()
	return in.Err()
}

// fleetChild is the state of one load-generator process.
type fleetChild struct {
	dialer *websocket.Dialer
	// stormDialer and http wait as long as a browser would: neither XHR nor the websocket
	// handshake of a page has a time limit of its own (the storm's end cancels them).
	stormDialer *websocket.Dialer
	http        *http.Client

	mu      sync.Mutex
	viewers []*viewer
	storm   *stormRun
}

// viewer is one browser tab: a websocket subscribed to one document.
type viewer struct {
	spec viewerSpec
	url  string
	sub  atomic.Pointer[subscriber]
}

// stormWait bounds one step of a reconnection (the storm's end cancels it sooner).
const stormWait = 10 * time.Minute

// apiConnsPerChild bounds one child's HTTP connections to the API: its viewers share them,
// as browsers behind one proxy would, since the API process has an open-files limit too.
const apiConnsPerChild = 1024

// sourceControl sets IP_BIND_ADDRESS_NO_PORT, so that binding a source address leaves the
// port to connect(), which may then reuse one port towards different destinations.
func sourceControl(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

func newFleetChild(src string) *fleetChild {
	nd := &net.Dialer{Timeout: 10 * time.Second, Control: sourceControl}
	stormND := &net.Dialer{Control: sourceControl} // a browser's connect retries for minutes
	if src != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		stormND.LocalAddr = nd.LocalAddr
	}
	tr := &http.Transport{DialContext: stormND.DialContext, MaxIdleConns: apiConnsPerChild,
		MaxIdleConnsPerHost: apiConnsPerChild, MaxConnsPerHost: apiConnsPerChild,
		DisableCompression: true, IdleConnTimeout: time.Minute}
	return &fleetChild{
		dialer: &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second,
			ReadBufferSize: 1024, WriteBufferSize: 1024},
		stormDialer: &websocket.Dialer{NetDialContext: stormND.DialContext, HandshakeTimeout: stormWait,
			ReadBufferSize: 1024, WriteBufferSize: 1024},
		http: &http.Client{Transport: tr},
	}
}

func (f *fleetChild) handle(req fleetReq) fleetResp {
	switch req.Cmd {
	case "dial":
		return f.dial(req.Viewers, max(req.Conc, 1))
	case "alive":
		return fleetResp{Alive: f.alive()}
	case "received":
		return fleetResp{Alive: f.alive(), Received: f.received()}
	case "collect":
		return f.collect(req.Updates)
	case "storm":
		if req.Storm == nil {
			return fleetResp{Err: "storm without a model"}
		}
		f.startStorm(*req.Storm)
		return fleetResp{Alive: f.alive()}
	case "stormstat":
		return f.stormStat(req.Full)
	case "stopstorm":
		f.stopStorm()
		return fleetResp{Alive: f.alive()}
	case "close":
		f.stopStorm()
		f.closeAll()
		return fleetResp{}
	}
	return fleetResp{Err: fmt.Sprintf("unknown command %q", req.Cmd)}
}

// dial opens the viewers, conc at a time, and keeps those that subscribed.
func (f *fleetChild) dial(specs []viewerSpec, conc int) fleetResp {
	var vs []*viewer
	for _, sp := range specs {
		for i := range sp.N {
			vs = append(vs, &viewer{spec: sp, url: sp.URLs[i%len(sp.URLs)]})
		}
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for _, v := range vs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := dialSubscriberWith(context.Background(), f.dialer, v.url, v.spec.Topic, v.spec.Auth, 15*time.Second, nil)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			v.sub.Store(s)
		}()
	}
	wg.Wait()
	f.mu.Lock()
	opened := 0
	for _, v := range vs {
		if v.sub.Load() != nil {
			f.viewers = append(f.viewers, v)
			opened++
		}
	}
	f.mu.Unlock()
	resp := fleetResp{Opened: opened, Failed: int(failed.Load()), Alive: f.alive()}
	if e, ok := firstErr.Load().(string); ok {
		resp.FirstErr = e
	}
	return resp
}

func (f *fleetChild) snapshot() []*viewer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*viewer(nil), f.viewers...)
}

func (f *fleetChild) alive() int {
	n := 0
	for _, v := range f.snapshot() {
		if s := v.sub.Load(); s != nil && s.alive() {
			n++
		}
	}
	return n
}

func (f *fleetChild) received() int {
	n := 0
	for _, v := range f.snapshot() {
		if s := v.sub.Load(); s != nil {
			s.mu.Lock()
			n += len(s.samples)
			s.mu.Unlock()
		}
	}
	return n
}

// collect turns the frames received of updates into latencies, and counts the ones a live
// viewer of the update's group did not get.
func (f *fleetChild) collect(updates []updateSent) fleetResp {
	done := make(map[uint64]updateSent, len(updates))
	perGroup, toAll := map[int]int{}, 0
	for _, u := range updates {
		done[u.Seq] = u
		if u.Group < 0 {
			toAll++
		} else {
			perGroup[u.Group]++
		}
	}
	var resp fleetResp
	for _, v := range f.snapshot() {
		s := v.sub.Load()
		if s == nil {
			continue
		}
		got := 0
		for _, sm := range s.take() {
			if u, ok := done[sm.seq]; ok && (u.Group < 0 || u.Group == v.spec.Group) {
				resp.Lat = append(resp.Lat, sm.recv-u.Done)
				got++
			}
		}
		resp.Missing += max(perGroup[v.spec.Group]+toAll-got, 0)
	}
	resp.Alive = f.alive()
	return resp
}

func (f *fleetChild) closeAll() {
	vs := f.snapshot()
	f.mu.Lock()
	f.viewers = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, v := range vs {
		if s := v.sub.Load(); s != nil {
			wg.Add(1)
			sem <- struct{}{}
			go func() { defer wg.Done(); defer func() { <-sem }(); s.close() }()
		}
	}
	wg.Wait()
}

// stormRun is the viewers' reconnection behaviour while it runs.
type stormRun struct {
	model  stormModel
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   int
	back     []int64
	pending  int
	attempts int
	hinted   map[string]int
	failed   map[string]int
	requests map[string]int
	steps    map[string][]int64
}

// step records how long a successful step took.
func (st *stormRun) step(name string, since time.Time) {
	d := int64(time.Since(since))
	st.mu.Lock()
	st.steps[name] = append(st.steps[name], d)
	st.mu.Unlock()
}

func (f *fleetChild) startStorm(m stormModel) {
	f.stopStorm()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stormRun{model: m, ctx: ctx, cancel: cancel,
		hinted: map[string]int{}, failed: map[string]int{}, requests: map[string]int{}, steps: map[string][]int64{}}
	f.mu.Lock()
	f.storm = st
	f.mu.Unlock()
	for _, v := range f.snapshot() {
		st.wg.Add(1)
		go func() { defer st.wg.Done(); f.watch(st, v) }()
	}
}

func (f *fleetChild) stopStorm() {
	f.mu.Lock()
	st := f.storm
	f.storm = nil
	f.mu.Unlock()
	if st != nil {
		st.cancel()
		st.wg.Wait()
	}
}

// stormStat reports the storm so far; without full, only the counts (the parent polls it
// while the storm runs, and copying every time would load the load generator).
func (f *fleetChild) stormStat(full bool) fleetResp {
	f.mu.Lock()
	st := f.storm
	f.mu.Unlock()
	if st == nil {
		return fleetResp{Err: "no storm running", Alive: f.alive()}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	stats := &stormStats{Closed: st.closed, BackCount: len(st.back), NotBack: st.pending, Attempts: st.attempts,
		Hinted: cp(st.hinted), Failed: cp(st.failed), Requests: cp(st.requests)}
	if full {
		stats.Back = append([]int64(nil), st.back...)
		stats.Steps = make(map[string][]int64, len(st.steps))
		for k, v := range st.steps {
			stats.Steps[k] = append([]int64(nil), v...)
		}
	}
	return fleetResp{Storm: stats}
}

func (st *stormRun) count(m map[string]int, kind string) {
	st.mu.Lock()
	m[kind]++
	st.mu.Unlock()
}

// sleep waits d unless the storm ends first.
func (st *stormRun) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-st.ctx.Done():
		return false
	}
}

func (st *stormRun) jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Float64()*st.model.Jitter*float64(d))
}

// watch waits for v's socket to close and brings the viewer back, again and again, until
// the storm ends.
func (f *fleetChild) watch(st *stormRun, v *viewer) {
	for {
		s := v.sub.Load()
		if s == nil {
			return
		}
		select {
		case <-s.done:
		case <-st.ctx.Done():
			return
		}
		s.conn.Close() // its file, or the process runs out of them
		st.mu.Lock()
		st.closed++
		st.pending++
		st.mu.Unlock()
		var wait time.Duration
		if s.closeCode == 4001 {
			wait = time.Duration(rand.Float64() * float64(st.model.ResyncSpread))
		} else {
			wait = st.jittered(st.model.First)
		}
		delay := st.model.First
		for {
			if !st.sleep(wait) {
				return
			}
			ok, opened := f.comeBack(st, v)
			if ok {
				st.mu.Lock()
				st.back = append(st.back, now())
				st.pending--
				st.mu.Unlock()
				break
			}
			if opened {
				delay = st.model.First
			} else {
				delay = min(2*delay, st.model.Max)
			}
			wait = st.jittered(delay)
		}
	}
}

// comeBack is one reconnection attempt: it reports whether the viewer is back, and whether
// its websocket had opened (live.js then starts its backoff anew).
func (f *fleetChild) comeBack(st *stormRun, v *viewer) (ok, opened bool) {
	st.mu.Lock()
	st.attempts++
	st.mu.Unlock()
	t0 := time.Now()
	url, err := f.get(st, "wsurl", v.spec.APIRoot+"bokeh/wsurl/")
	if err != nil {
		return false, false
	}
	st.step("wsurl", t0)
	st.count(st.requests, "websocket")
	t0 = time.Now()
	s, err := dialSubscriberWith(st.ctx, f.stormDialer, strings.TrimSpace(string(url)), v.spec.Topic, v.spec.Auth, stormWait,
		func() { st.step("websocket", t0); t0 = time.Now() })
	if err != nil {
		st.classify("websocket", err)
		var se *subscribeError
		return false, errors.As(err, &se)
	}
	st.step("subscribe", t0)
	v.sub.Store(s)
	for {
		t0 := time.Now()
		_, err := f.get(st, "reload", v.spec.APIRoot+"bokeh/bokehinfo/"+v.spec.DocID+"/")
		if err == nil {
			st.step("reload", t0)
			return true, true
		}
		var he *httpError
		wait := st.model.First
		if errors.As(err, &he) && he.retryAfter > 0 {
			wait = he.retryAfter
		}
		if !s.alive() || !st.sleep(st.jittered(wait)) {
			return false, true
		}
	}
}

// httpError is an HTTP answer other than 200.
type httpError struct {
	status     int
	retryAfter time.Duration
}

func (e *httpError) Error() string { return "status " + strconv.Itoa(e.status) }

// get fetches url, counting the request as kind and classifying a failure.
func (f *fleetChild) get(st *stormRun, kind, url string) ([]byte, error) {
	st.count(st.requests, kind)
	req, err := http.NewRequestWithContext(st.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		st.classify(kind, err)
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		he := &httpError{status: resp.StatusCode}
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
			he.retryAfter = time.Duration(s) * time.Second
		} else if resp.Header.Get("Retry-After") != "" {
			he.retryAfter = st.model.First // an HTTP date: a hint all the same
		}
		err = he
	}
	if err != nil {
		st.classify(kind, err)
		return nil, err
	}
	return body, nil
}

// classify counts a failure: a 429 or 503 with Retry-After is a refusal with a retry hint;
// anything else is a failure.
func (st *stormRun) classify(kind string, err error) {
	if st.ctx.Err() != nil {
		return // the storm is over: the request was cancelled, not refused
	}
	var he *httpError
	var de *dialError
	var se *subscribeError
	switch {
	case errors.As(err, &he):
		if (he.status == 429 || he.status == 503) && he.retryAfter > 0 {
			st.count(st.hinted, fmt.Sprintf("%s %d", kind, he.status))
			return
		}
		st.count(st.failed, fmt.Sprintf("%s status %d", kind, he.status))
	case errors.As(err, &se):
		reply := string(se.reply)
		if i := strings.Index(reply, `"error_msg": `); i >= 0 {
			reply = reply[i+len(`"error_msg": `):]
		}
		if se.err != nil {
			reply = se.err.Error()
		}
		st.count(st.failed, "subscribe: "+shorten(reply, 80))
	case errors.As(err, &de) && de.resp != nil:
		if (de.resp.StatusCode == 429 || de.resp.StatusCode == 503) && de.resp.Header.Get("Retry-After") != "" {
			st.count(st.hinted, fmt.Sprintf("%s %d", kind, de.resp.StatusCode))
			return
		}
		st.count(st.failed, fmt.Sprintf("%s status %d", kind, de.resp.StatusCode))
	case errors.Is(err, syscall.ECONNREFUSED):
		st.count(st.failed, kind+": connection refused")
	case errors.Is(err, syscall.ECONNRESET):
		st.count(st.failed, kind+": connection reset")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			st.count(st.failed, kind+": timeout")
			return
		}
		st.count(st.failed, kind+": "+shorten(err.Error(), 80))
	}
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
