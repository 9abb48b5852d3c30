package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// The publish-path fault suite: the processes between the API and the pages fail while a
// writer streams numbered updates, and page-like clients (reconnecting and reloading like
// live.js) watch. Each test ends with every client at the last acknowledged write and at
// what storage holds, with no write lost within a connection, and (the worker living
// through the fault) every connection ended by a resync close the client was told about.

const (
	restartGap  = 300 * time.Millisecond // a killed process comes back after this
	retryPause  = 20 * time.Millisecond  // a writer whose write failed tries again
	writeWindow = 60 * time.Second       // bounds one write's retries
)

// streamWriter writes numbered updates to one stream of a document, one at a time. A write
// that fails (the API is down) is retried with the same number until acknowledged, as a
// script that retries would; pause stops it between two writes.
type streamWriter struct {
	doc    *cluster.SeqDoc
	v      *cluster.Validator
	source int // the stream's source in doc
	next   int64
	mu     sync.Mutex // held during each write: pause takes it
}

func newStreamWriter(doc *cluster.SeqDoc, v *cluster.Validator, stream int) *streamWriter {
	return &streamWriter{doc: doc, v: v, source: stream, next: 1}
}

// write writes the next number, retrying until it is acknowledged.
func (w *streamWriter) write(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	deadline := time.Now().Add(writeWindow)
	for {
		r := w.doc.Write(w.v, w.source, w.next)
		if r.Status == http.StatusOK {
			w.next++
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("stream %d: write %d not acknowledged within %v (last: %d %v)", w.source, w.next, writeWindow, r.Status, r.Err)
			return
		}
		time.Sleep(retryPause)
	}
}

// writeN writes n updates, pace apart.
func (w *streamWriter) writeN(t *testing.T, n int, pace time.Duration) {
	for range n {
		w.write(t)
		time.Sleep(pace)
	}
}

// during runs fault while the writer is between two writes.
func (w *streamWriter) during(fault func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fault()
}

// pageClients dials n page-like clients through wsurl, round robin over the roots, each
// reloading doc after every reconnection.
func pageClients(t *testing.T, v *cluster.Validator, doc *cluster.SeqDoc, n int, roots ...string) {
	t.Helper()
	for i := range n {
		root := roots[i%len(roots)]
		url := cluster.WSURL(t, root)
		dialLive(t, cluster.LiveOptions{Root: root, URL: url, Topic: doc.Topic, Auth: doc.ReadKey,
			Reconnect: true, Reload: doc.Streams(),
			Log: v.NewClient(fmt.Sprintf("page %d on :%d", i, cluster.URLPort(url)), false)})
	}
}

// checkResynced validates the clients against storage and checks that every connection that
// ended did so with a resync close (no worker died), at least one of them.
func checkResynced(t *testing.T, v *cluster.Validator, doc *cluster.SeqDoc, workers ...int) cluster.Summary {
	t.Helper()
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))
	for code := range sum.Closes {
		if code != cluster.CloseResync {
			t.Errorf("connections closed with %d (all closes: %v): the worker lived, every close must be a resync (%d)",
				code, sum.Closes, cluster.CloseResync)
		}
	}
	resyncs := map[string]uint64{}
	for _, port := range workers {
		for reason, n := range cluster.GetWorkerStats(t, port).Resyncs {
			resyncs[reason] += n
		}
	}
	t.Logf("caught up %v after the last write; %s; worker resyncs %v", caught.Round(time.Millisecond), sum, resyncs)
	return sum
}

// handStartedAPI is bokeh-server --no-ws-start on redis with one ws-worker started by hand
// on --ws-port, as in the original 0.6 topology: wsurl hands out the worker without
// --ws-conn-string.
func handStartedAPI(t *testing.T, extraAPI, extraWorker []string) (*cluster.Server, *cluster.Worker) {
	t.Helper()
	b := cluster.Build(t)
	rs := redistest.Start(t)
	wsPort := cluster.FreePort(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: rs.Port, NoWSStart: true,
		Extra: append([]string{"--ws-port", strconv.Itoa(wsPort)}, extraAPI...)})
	w := cluster.StartWorker(t, b, cluster.WorkerOptions{ZMQAddr: s.Opts.ZMQAddr, APIRoot: s.Root, Port: wsPort,
		Extra: extraWorker})
	if got := cluster.WSURL(t, s.Root); got != wsURLOf(wsPort) {
		t.Fatalf("wsurl of --no-ws-start --ws-port %d: %q, want %q", wsPort, got, wsURLOf(wsPort))
	}
	return s, w
}

// TestFaultAPIRestart: kill -9 of the API while its worker lives, and a restart on the same
// ports. The worker's ZeroMQ socket reconnects to the new process and its pages resync.
// In the second case the stream stops at the kill and the only write after the restart is
// the last one: it must reach every page although nothing follows it.
func TestFaultAPIRestart(t *testing.T) {
	for _, c := range []struct {
		name          string
		before, after int
	}{{"mid-stream", 60, 60}, {"last write first after restart", 40, 1}} {
		t.Run(c.name, func(t *testing.T) {
			s, w := handStartedAPI(t, nil, nil)
			doc := cluster.NewSeqDoc(t, s.Root, "api-restart", 1, 20)
			v := cluster.NewValidator()
			pageClients(t, v, doc, 6, s.Root)
			writer := newStreamWriter(doc, v, 0)
			writer.writeN(t, c.before, 10*time.Millisecond)
			writer.during(func() {
				s.Kill(t)
				time.Sleep(restartGap)
				s.Restart(t)
			})
			writer.writeN(t, c.after, 10*time.Millisecond)
			sum := checkResynced(t, v, doc, w.Port)
			if sum.Closes[cluster.CloseResync] < 6 {
				t.Errorf("%d resync closes, want every page told at least once: %s", sum.Closes[cluster.CloseResync], sum)
			}
		})
	}
}

// TestFaultForwarderRestart: two APIs publish through a forwarder that is killed with -9
// mid-stream and restarted; both APIs' streams reach the pages on two workers.
func TestFaultForwarderRestart(t *testing.T) {
	b := cluster.Build(t)
	rs := redistest.Start(t)
	in, out := cluster.ZMQAddr(t), cluster.ZMQAddr(t)
	fwd := cluster.StartForwarder(t, b, in, out)
	// API i hands out worker i (--no-ws-start --ws-port), which asks API i for doc keys.
	ports := []int{cluster.FreePort(t), cluster.FreePort(t)}
	var apis []*cluster.Server
	for i := range 2 {
		apis = append(apis, cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: rs.Port,
			NoWSStart: true, ZMQAddr: in, ZMQConnect: true, Extra: []string{"--ws-port", strconv.Itoa(ports[i])}}))
		cluster.StartWorker(t, b, cluster.WorkerOptions{ZMQAddr: out, APIRoot: apis[i].Root, Port: ports[i]})
	}
	doc := cluster.NewSeqDoc(t, apis[0].Root, "forwarder-restart", 2, 20)
	v := cluster.NewValidator()
	for i := range 8 {
		port := ports[i%2]
		dialLive(t, cluster.LiveOptions{Root: apis[i%2].Root, URL: wsURLOf(port), Topic: doc.Topic, Auth: doc.ReadKey,
			Reconnect: true, Reload: doc.Streams(), Log: v.NewClient(fmt.Sprintf("page %d on :%d", i, port), false)})
	}
	writers := []*streamWriter{newStreamWriter(doc.Via(apis[0].Root), v, 0), newStreamWriter(doc.Via(apis[1].Root), v, 1)}
	var wg sync.WaitGroup
	for _, wr := range writers {
		wg.Go(func() { wr.writeN(t, 150, 10*time.Millisecond) })
	}
	for deadline := time.Now().Add(writeWindow); len(v.AckedSeqs(doc.Stream(0))) < 50 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// The writes go on meanwhile: the APIs acknowledge them while their publishes are lost.
	fwd.Kill(t)
	time.Sleep(restartGap)
	fwd.Restart(t)
	wg.Wait()
	checkResynced(t, v, doc, ports...)
}

// TestFaultWorkerQueueOverflow: a worker with a tiny ZeroMQ high-water mark (and an API with
// one) stops reading during a burst of large updates; what does not fit is dropped on the
// way, the worker sees the broken chain and its pages resync.
func TestFaultWorkerQueueOverflow(t *testing.T) {
	hwm := []string{"--zmq-hwm", "10"}
	s, w := handStartedAPI(t, hwm, hwm)
	doc := cluster.NewSeqDoc(t, s.Root, "overflow", 1, 4000) // about 36 KB a write
	v := cluster.NewValidator()
	pageClients(t, v, doc, 4, s.Root)
	writer := newStreamWriter(doc, v, 0)
	writer.writeN(t, 20, 5*time.Millisecond)
	// 500 writes of 36 KB while the worker is stopped: far more than the socket buffers and
	// high-water marks between the API and the worker hold.
	stopped(t, w.Proc, func() { writer.writeN(t, 500, 0) })
	writer.writeN(t, 20, 5*time.Millisecond)
	checkResynced(t, v, doc, w.Port)
	if st := cluster.GetWorkerStats(t, w.Port); st.Resyncs["gap"] == 0 {
		t.Errorf("worker stats %+v: the burst overflowed nothing, the test proves nothing", st)
	}
}

// TestFaultWorkerStopped: a worker stopped with SIGSTOP for 3 s while the stream goes on,
// then continued: it catches up (from its socket buffers, or by resyncing what did not fit).
func TestFaultWorkerStopped(t *testing.T) {
	s, w := handStartedAPI(t, nil, nil)
	doc := cluster.NewSeqDoc(t, s.Root, "sigstop", 1, 20)
	v := cluster.NewValidator()
	pageClients(t, v, doc, 6, s.Root)
	writer := newStreamWriter(doc, v, 0)
	writer.writeN(t, 30, 20*time.Millisecond)
	stopped(t, w.Proc, func() {
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			writer.writeN(t, 1, 20*time.Millisecond)
		}
	})
	writer.writeN(t, 30, 20*time.Millisecond)
	checkResynced(t, v, doc, w.Port)
}

// stopped runs f while p is stopped with SIGSTOP, and continues p afterwards.
func stopped(t *testing.T, p *cluster.Proc, f func()) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", p.Name, err)
	}
	defer func() {
		if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT %s: %v", p.Name, err)
		}
	}()
	f()
}
