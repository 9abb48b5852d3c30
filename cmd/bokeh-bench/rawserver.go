package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/pflag"
)

// broadcastChild ("internal-broadcast") is the limit the servers are compared with: a
// minimal gorilla websocket server. It serves websockets at /ws (?g=N puts a connection in
// group N, as a document's viewers are), answers every subscribe at once with
// subscribesuccess, and serves the two HTTP requests a reconnecting page makes
// (bokeh/wsurl/, round robin over its peers' websocket URLs, and bokeh/bokehinfo/<docid>/, a
// fixed body of --info-bytes). It takes commands on a second port, one per line:
//
//	<seq> [group]   answered "ok" at once (as the API answers a write once it has
//	                published); the frame of seq is prepared once and written to every
//	                connection (of the group) by GOMAXPROCS broadcasting goroutines, each
//	                over its share of the connections in order
//	drop            closes every connection at once (a worker dying), answered "ok"
//	peers <urls>    the websocket URLs wsurl hands out (comma-separated)
//
// It stands for a worker with nothing but the broadcast itself: no ZeroMQ, no hub, no
// per-connection queue or writer goroutine, no key lookup.
func broadcastChild(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("internal-broadcast", pflag.ContinueOnError)
	docid := fs.String("docid", "00000000-0000-0000-0000-000000000000", "document id in the frames")
	frameBytes := fs.Int("frame-bytes", 1024, "frame size")
	infoBytes := fs.Int("info-bytes", 4096, "size of the bokehinfo answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pad := newSmallBodies(*docid, *frameBytes).pad
	info := rawInfo(*infoBytes)
	// The hub's buffer settings, so that the idle figures compare.
	up := &websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(*http.Request) bool { return true }}
	b := &broadcaster{shards: make([]*shard, runtime.GOMAXPROCS(0)), queue: make(chan groupFrame, 1<<16)}
	for i := range b.shards {
		b.shards[i] = &shard{conns: map[*rawConn]struct{}{}, in: make(chan groupFrame, 1<<16)}
		go b.shards[i].run()
	}
	go b.run()
	self := "ws://" + ln.Addr().String() + "/ws"
	b.peers.Store(&[]string{self})
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(time.Hour)) // bounds a write to a stuck client
		g, _ := strconv.Atoi(r.URL.Query().Get("g"))
		rc := &rawConn{c: c, group: g}
		sh := b.add(rc)
		go rc.readLoop(sh) // the one goroutine per connection: subscribes, control frames, the close
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, b.count()) })
	mux.HandleFunc("/bokeh/wsurl/", func(w http.ResponseWriter, r *http.Request) {
		peers := *b.peers.Load()
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(peers[b.nextPeer.Add(1)%uint64(len(peers))]))
	})
	mux.HandleFunc("/bokeh/bokehinfo/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(info)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	go func() {
		for {
			c, err := ctl.Accept()
			if err != nil {
				return
			}
			go b.control(c, *docid, pad)
		}
	}()
	fmt.Printf("listening %d %d\n", ln.Addr().(*net.TCPAddr).Port, ctl.Addr().(*net.TCPAddr).Port)
	<-ctx.Done()
	ctl.Close()
	srv.Close()
	return nil
}

// rawInfo is a bokehinfo-shaped body of n bytes.
func rawInfo(n int) []byte {
	b := []byte(`{"docid": "raw", "all_models": [], "pad": "`)
	b = append(b, bytes.Repeat([]byte("x"), max(n-len(b)-2, 0))...)
	return append(b, `"}`...)
}

// rawConn is one websocket of the raw server; mu orders the subscribe answers between the
// broadcast's writes.
type rawConn struct {
	c     *websocket.Conn
	group int
	mu    sync.Mutex
}

func (rc *rawConn) write(pm *websocket.PreparedMessage) {
	rc.mu.Lock()
	rc.c.WritePreparedMessage(pm) // a failed connection's reader removes it
	rc.mu.Unlock()
}

func (rc *rawConn) readLoop(sh *shard) {
	defer func() { sh.remove(rc); rc.c.Close() }()
	for {
		typ, msg, err := rc.c.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			continue
		}
		var m struct{ Msgtype, Topic string }
		if json.Unmarshal(msg, &m) != nil || m.Msgtype != "subscribe" {
			continue
		}
		t, _ := json.Marshal(m.Topic)
		reply := m.Topic + `:{"msgtype": "status", "status": ["subscribesuccess", ` + string(t) + `, "raw"]}`
		rc.mu.Lock()
		err = rc.c.WriteMessage(websocket.TextMessage, []byte(reply))
		rc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// groupFrame is a prepared frame for the connections of one group (-1: all).
type groupFrame struct {
	pm    *websocket.PreparedMessage
	group int
}

type broadcaster struct {
	shards   []*shard
	queue    chan groupFrame
	next     atomic.Uint64
	peers    atomic.Pointer[[]string]
	nextPeer atomic.Uint64
}

type shard struct {
	mu    sync.Mutex
	conns map[*rawConn]struct{}
	list  []*rawConn // copy-on-write snapshot of conns
	in    chan groupFrame
}

func (b *broadcaster) add(c *rawConn) *shard {
	sh := b.shards[b.next.Add(1)%uint64(len(b.shards))]
	sh.mu.Lock()
	sh.conns[c] = struct{}{}
	sh.list = nil
	sh.mu.Unlock()
	return sh
}

func (sh *shard) remove(c *rawConn) {
	sh.mu.Lock()
	delete(sh.conns, c)
	sh.list = nil
	sh.mu.Unlock()
}

func (sh *shard) snapshot() []*rawConn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.list == nil {
		sh.list = make([]*rawConn, 0, len(sh.conns))
		for c := range sh.conns {
			sh.list = append(sh.list, c)
		}
	}
	return sh.list
}

func (b *broadcaster) count() int {
	n := 0
	for _, sh := range b.shards {
		sh.mu.Lock()
		n += len(sh.conns)
		sh.mu.Unlock()
	}
	return n
}

// drop closes every connection, as a dying worker's sockets are.
func (b *broadcaster) drop() {
	for _, sh := range b.shards {
		for _, c := range sh.snapshot() {
			c.c.NetConn().Close()
		}
	}
}

// run hands every prepared frame to every shard.
func (b *broadcaster) run() {
	for f := range b.queue {
		for _, sh := range b.shards {
			sh.in <- f
		}
	}
}

func (sh *shard) run() {
	for f := range sh.in {
		for _, c := range sh.snapshot() {
			if f.group < 0 || c.group == f.group {
				c.write(f.pm)
			}
		}
	}
}

// control answers commands on one connection.
func (b *broadcaster) control(c net.Conn, docid, pad string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			return
		case f[0] == "drop":
			b.drop()
		case f[0] == "peers" && len(f) == 2:
			peers := strings.Split(f[1], ",")
			b.peers.Store(&peers)
		default:
			seq, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return
			}
			group := -1
			if len(f) > 1 {
				if group, err = strconv.Atoi(f[1]); err != nil {
					return
				}
			}
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, fanFrame(docid, seq, pad))
			if err != nil {
				return
			}
			b.queue <- groupFrame{pm: pm, group: group}
		}
		if _, err := c.Write([]byte("ok\n")); err != nil {
			return
		}
	}
}
