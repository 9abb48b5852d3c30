package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// Bounds of the topology and fault scenarios. Nothing asserts on elapsed time; these only
// stop a broken cluster from hanging the test.
const (
	catchUpWait = 20 * time.Second // last write until every client has it
	statsWait   = 15 * time.Second // a worker counter reaching a value
)

// wsURLOf is the websocket URL of a worker port, as wsurl hands it out.
func wsURLOf(port int) string { return "ws://127.0.0.1:" + strconv.Itoa(port) + "/bokeh/sub/" }

// dialLive opens a LiveClient, failing the test if it cannot subscribe; it is closed when
// the test ends.
func dialLive(t *testing.T, o cluster.LiveOptions) *cluster.LiveClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.DialLive(ctx, o)
	if err != nil {
		t.Fatalf("%s: %v", o.Log.Name, err)
	}
	t.Cleanup(func() {
		c.Close()
		cluster.CloseIdleConnections()
	})
	return c
}

// logLine returns the first line of p's log that contains substr, or "".
func logLine(p *cluster.Proc, substr string) string {
	for _, line := range strings.Split(p.Log(), "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// waitCaughtUp waits until every validated client has the last acknowledged writes.
func waitCaughtUp(t *testing.T, v *cluster.Validator) time.Duration {
	t.Helper()
	start := time.Now()
	if !v.WaitCaughtUp(catchUpWait) {
		t.Errorf("clients did not catch up within %v", catchUpWait)
	}
	return time.Since(start)
}

// mustAllOK fails the test unless every write was acknowledged.
func mustAllOK(t *testing.T, what string, rs []cluster.WriteResult, want int) {
	t.Helper()
	if len(rs) != want {
		last := rs[len(rs)-1]
		t.Fatalf("%s: write of seq %d answered %d (%v) after %d writes", what, last.Seq, last.Status, last.Err, len(rs)-1)
	}
}

// waitStats polls a worker's /stats until ok holds (bounded) and returns the last stats.
func waitStats(t *testing.T, port int, what string, ok func(cluster.WorkerStats) bool) cluster.WorkerStats {
	t.Helper()
	deadline := time.Now().Add(statsWait)
	for {
		st := cluster.GetWorkerStats(t, port)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker :%d: %s not reached within %v: %+v", port, what, statsWait, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTopologyFanOut: two auto-started workers, 50 browsers found through wsurl, 40 on one
// document (half with its read-only key, half with its write key), 10 on another. Every
// watcher of the busy document gets every push in publish order; the others get none.
// Refused subscriptions answer an error frame and keep the socket.
func TestTopologyFanOut(t *testing.T) {
	const (
		clientsA, clientsB = 40, 10
		writes             = 200
	)
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 2})
	docA := cluster.NewSeqDoc(t, s.Root, "fanout-a", 1, 20)
	docB := cluster.NewSeqDoc(t, s.Root, "fanout-b", 1, 20)
	v := cluster.NewValidator()

	// Refusals keep the socket: a wrong key, an unknown document, then the right key.
	raw := cluster.Dial(t, cluster.WSURL(t, s.Root), true)
	wrong := "not-the-key"
	if got, want := raw.Subscribe(t, docA.Topic, &wrong), docA.Topic+`:{"msgtype": "error", "error_msg": "unauthorized"}`; got != want {
		t.Fatalf("subscribe with a wrong key answered\n  %s\nwant\n  %s", got, want)
	}
	unknown := "bokehplot:" + uuid.NewString()
	if got := raw.Subscribe(t, unknown, &docA.ReadKey); !strings.HasPrefix(got, unknown+`:{"msgtype": "error", "error_msg": `) {
		t.Fatalf("subscribe to an unknown document answered %s, want an error frame", got)
	} else {
		t.Logf("unknown document: %s", got)
	}
	raw.MustSubscribe(t, docA.Topic, docA.ReadKey)
	rawLog := v.NewClient("raw client after two refusals", true)
	rawLog.Subscribed(docA.Topic)

	ports := map[int]int{}
	var logsB []*cluster.ClientLog
	for i := 0; i < clientsA+clientsB; i++ {
		url := cluster.WSURL(t, s.Root)
		ports[cluster.URLPort(url)]++
		doc, key, kind := docA, docA.ReadKey, "read-only key"
		if i%2 == 1 {
			key, kind = docA.WriteKey, "write key"
		}
		if i >= clientsA {
			doc, key, kind = docB, docB.ReadKey, "doc B"
		}
		log := v.NewClient(fmt.Sprintf("client %d (%s, %s)", i, kind, url), true)
		if i >= clientsA {
			logsB = append(logsB, log)
		}
		dialLive(t, cluster.LiveOptions{Root: s.Root, URL: url, Topic: doc.Topic, Auth: key, Log: log})
	}
	for i := 0; i < 2; i++ {
		if ports[s.WSPort+i] == 0 {
			t.Errorf("no client was handed worker :%d (spread %v)", s.WSPort+i, ports)
		}
	}

	start := time.Now()
	mustAllOK(t, "doc A", docA.WriteRange(v, 0, 1, writes, 0), writes)
	wrote := time.Since(start)
	for rawLog.PushCount() < writes {
		f, ok := raw.Next(t, catchUpWait)
		if !ok {
			break
		}
		rawLog.Frame(f)
	}
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, docA.Stored(t))
	for _, l := range logsB {
		if n := l.PushCount(); n != 0 {
			t.Errorf("%s received %d pushes of doc A", l.Name, n)
		}
	}
	var stats []cluster.WorkerStats
	for i := 0; i < 2; i++ {
		stats = append(stats, cluster.GetWorkerStats(t, s.WSPort+i))
	}
	t.Logf("spread over workers %v; %d writes in %v, all delivered %v later; validator: %s; delivered per worker %d/%d, auth failures %d/%d",
		ports, writes, wrote.Round(time.Millisecond), caught.Round(time.Millisecond), sum,
		stats[0].Delivered, stats[1].Delivered, stats[0].AuthFailures, stats[1].AuthFailures)
}

// slowQueue is the send-queue limit of workers in the stalled-client tests: small enough
// that a stalled client is closed after a few MB (most of it fills the kernel's socket
// buffers first), large enough that reading clients in a -race test process on a loaded
// 2-core machine never fall that far behind (~200 ms of 14 KB pushes every 3 ms).
const slowQueue = "1048576"

// TestTopologySlowClient: a browser that stops reading is closed by its send-queue limit or
// write deadline while the others keep receiving everything.
func TestTopologySlowClient(t *testing.T) {
	const readers, maxWrites, afterClose, pace = 5, 800, 20, 3 * time.Millisecond
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{NoWSStart: true})
	w := cluster.StartWorker(t, b, cluster.WorkerOptions{ZMQAddr: s.Opts.ZMQAddr, APIRoot: s.Root,
		Extra: []string{"--max-queue-bytes", slowQueue, "--write-timeout", "2s"}})
	doc := cluster.NewSeqDoc(t, s.Root, "slow-client", 1, 2000)
	v := cluster.NewValidator()
	for i := 0; i < readers; i++ {
		dialLive(t, cluster.LiveOptions{Root: s.Root, URL: wsURLOf(w.Port), Topic: doc.Topic, Auth: doc.ReadKey,
			Log: v.NewClient(fmt.Sprintf("reader %d", i), true)})
	}
	cluster.DialStalled(t, wsURLOf(w.Port), doc.Topic, doc.ReadKey)
	waitStats(t, w.Port, "6 subscriptions", func(st cluster.WorkerStats) bool { return st.Subscriptions >= readers+1 })

	closedAt := int64(0)
	var seq int64
	for seq = 1; seq <= maxWrites; seq++ {
		if r := doc.Write(v, 0, seq); r.Status != http.StatusOK {
			t.Fatalf("write %d: %d %v", seq, r.Status, r.Err)
		}
		// Paced so that reading clients keep up while the stalled one fills its buffers.
		time.Sleep(pace)
		if closedAt == 0 && seq%10 == 0 && cluster.GetWorkerStats(t, w.Port).SlowClientCloses > 0 {
			closedAt = seq
		}
		if closedAt != 0 && seq >= closedAt+afterClose {
			break
		}
	}
	if closedAt == 0 {
		st := waitStats(t, w.Port, "a slow-client close", func(st cluster.WorkerStats) bool { return st.SlowClientCloses > 0 })
		closedAt = seq
		t.Logf("stalled client closed only after the last write: %+v", st)
	}
	waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))
	st := cluster.GetWorkerStats(t, w.Port)
	if st.SlowClientCloses < 1 {
		t.Errorf("slow_client_closes = %d, want >= 1", st.SlowClientCloses)
	}
	t.Logf("worker log: %s", logLine(w.Proc, "slow consumer"))
	t.Logf("stalled client closed after ~%d pushes of ~%d bytes; %d writes in all; validator: %s; worker: slow closes %d, dropped for slow clients %d, delivered %d",
		closedAt, len(doc.WriteBody(0, 1)), seq-1, sum, st.SlowClientCloses, st.DroppedSlow, st.Delivered)
}

// TestTopologyWorkerRestart: kill -9 of an auto-started worker; bokeh-server restarts it on
// the same port, and wsurl never hands out the port while no worker listens there.
func TestTopologyWorkerRestart(t *testing.T) {
	const maxPolls = 50000
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 2})
	port := s.WSPort
	pid := workerPid(t, s, port)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	killed := time.Now()
	// Reaped: bokeh-server has seen the exit (it marks a worker down when its output ends,
	// which is before the reaping).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed worker %d not reaped", pid)
		}
		time.Sleep(time.Millisecond)
	}
	reaped := time.Since(killed)

	downPolls := 0
	newPid := 0
	deadline := time.Now().Add(30 * time.Second)
	for polls := 0; polls < maxPolls && time.Now().Before(deadline); polls++ {
		url := cluster.WSURL(t, s.Root)
		if p := cluster.URLPort(url); p != port {
			if p != port+1 {
				t.Fatalf("wsurl handed out %s", url)
			}
			downPolls++
			continue
		}
		// Handed out again: a new worker must be serving there.
		r := apitest.Get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("wsurl handed out :%d but /healthz answers %d", port, r.Status)
		}
		newPid = workerPid(t, s, port)
		break
	}
	restarted := time.Since(killed)
	if newPid == 0 {
		t.Fatalf("worker :%d not back after %d wsurl polls (%v)", port, downPolls, restarted)
	}
	if newPid == pid {
		t.Fatalf("wsurl hands out :%d again, but its pid is still %d", port, pid)
	}
	if downPolls == 0 {
		t.Errorf("no wsurl poll saw the worker down: the test did not observe the outage")
	}
	c := cluster.Dial(t, cluster.WSURL(t, s.Root), true)
	doc := cluster.NewSeqDoc(t, s.Root, "restarted-worker", 1, 5)
	c.MustSubscribe(t, doc.Topic, doc.ReadKey)
	t.Logf("worker pid %d killed: reaped after %v; %d wsurl answers during the outage, all naming :%d; new pid %d on :%d handed out %v after the kill",
		pid, reaped.Round(time.Microsecond), downPolls, port+1, newPid, port, restarted.Round(time.Millisecond))
}

// TestTopologyTwoAPIsForwarder: two API processes on one redis publish through a forwarder
// to two hand-started workers; clients on both workers get the writes of both APIs, each
// API's in its order.
func TestTopologyTwoAPIsForwarder(t *testing.T) {
	const perWorker, writes = 8, 150
	b := cluster.Build(t)
	rs := redistest.Start(t)
	in, out := cluster.ZMQAddr(t), cluster.ZMQAddr(t)
	cluster.StartForwarder(t, b, in, out)
	var apis []*cluster.Server
	for i := 0; i < 2; i++ {
		apis = append(apis, cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: rs.Port,
			NoWSStart: true, ZMQAddr: in, ZMQConnect: true}))
	}
	var workers []*cluster.Worker
	for i := 0; i < 2; i++ {
		workers = append(workers, cluster.StartWorker(t, b, cluster.WorkerOptions{ZMQAddr: out, APIRoot: apis[i].Root}))
	}
	doc := cluster.NewSeqDoc(t, apis[0].Root, "two-apis", 2, 20)
	v := cluster.NewValidator()
	for i := 0; i < 2*perWorker; i++ {
		w := workers[i%2]
		dialLive(t, cluster.LiveOptions{Root: apis[i%2].Root, URL: wsURLOf(w.Port), Topic: doc.Topic, Auth: doc.ReadKey,
			Log: v.NewClient(fmt.Sprintf("client %d on worker :%d", i, w.Port), true)})
	}

	results := make([][]cluster.WriteResult, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = doc.Via(apis[i].Root).WriteRange(v, i, 1, writes, 0)
		}()
	}
	wg.Wait()
	wrote := time.Since(start)
	for i := 0; i < 2; i++ {
		mustAllOK(t, fmt.Sprintf("through API %d", i), results[i], writes)
	}
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))
	for _, w := range workers {
		st := cluster.GetWorkerStats(t, w.Port)
		if st.AckTimeouts != 0 {
			t.Errorf("worker :%d answered %d subscriptions without an acknowledgement", w.Port, st.AckTimeouts)
		}
		t.Logf("worker :%d: delivered %d, zmq received %d (acks %d)", w.Port, st.Delivered, st.ZMQReceived, st.ZMQAcks)
	}
	t.Logf("2 APIs x %d writes in %v, delivered %v later to %d clients on 2 workers; validator: %s",
		writes, wrote.Round(time.Millisecond), caught.Round(time.Millisecond), 2*perWorker, sum)
}

// TestTopologyUnwatched: a worker receives nothing over ZeroMQ for documents none of its
// clients watch.
func TestTopologyUnwatched(t *testing.T) {
	const perWorker, writes = 5, 100
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 2})
	quiet := cluster.NewSeqDoc(t, s.Root, "quiet", 1, 5)
	busy := cluster.NewSeqDoc(t, s.Root, "busy", 1, 20)
	v := cluster.NewValidator()
	w1, w2 := s.WSPort, s.WSPort+1
	for i := 0; i < perWorker; i++ {
		dialLive(t, cluster.LiveOptions{Root: s.Root, URL: wsURLOf(w1), Topic: quiet.Topic, Auth: quiet.ReadKey,
			Log: v.NewClient(fmt.Sprintf("quiet watcher %d on :%d", i, w1), true)})
		dialLive(t, cluster.LiveOptions{Root: s.Root, URL: wsURLOf(w2), Topic: busy.Topic, Auth: busy.ReadKey,
			Log: v.NewClient(fmt.Sprintf("busy watcher %d on :%d", i, w2), true)})
	}
	mustAllOK(t, "busy doc", busy.WriteRange(v, 0, 1, writes, 0), writes)
	waitCaughtUp(t, v)
	sum := v.Check(t, busy.Stored(t))
	st1 := cluster.GetWorkerStats(t, w1)
	st2 := waitStats(t, w2, "every delivery counted", func(st cluster.WorkerStats) bool { return st.Delivered >= perWorker*writes })
	// Only the publisher's answers, hellos and heartbeats of the quiet doc (created just now).
	if st1.Unwatched != 0 || st1.Delivered != 0 || st1.ZMQReceived != st1.ZMQAcks+st1.ZMQHellos+st1.ZMQHeartbeats {
		t.Errorf("worker :%d (no watcher of the busy doc) got traffic: zmq received %d (acks %d, hellos %d, heartbeats %d), unwatched %d, delivered %d",
			w1, st1.ZMQReceived, st1.ZMQAcks, st1.ZMQHellos, st1.ZMQHeartbeats, st1.Unwatched, st1.Delivered)
	}
	if st2.Unwatched != 0 || st2.Delivered != perWorker*writes {
		t.Errorf("worker :%d: unwatched %d, delivered %d (want %d)", w2, st2.Unwatched, st2.Delivered, perWorker*writes)
	}
	t.Logf("quiet worker :%d: zmq received %d (all acks: %d), unwatched %d, delivered %d; busy worker :%d: zmq received %d (acks %d), delivered %d; validator: %s",
		w1, st1.ZMQReceived, st1.ZMQAcks, st1.Unwatched, st1.Delivered, w2, st2.ZMQReceived, st2.ZMQAcks, st2.Delivered, sum)
}

// TestTopologyProtocolSuite runs the single-user protocol suite, websocket pushes included,
// against each process topology.
func TestTopologyProtocolSuite(t *testing.T) {
	b := cluster.Build(t)
	t.Run("OneWorker", func(t *testing.T) {
		s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 1})
		apitest.SingleUser(t, target(s, false))
	})
	t.Run("ThreeWorkers", func(t *testing.T) {
		s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 3})
		apitest.SingleUser(t, target(s, false))
	})
	t.Run("ForwarderHandStartedWorkers", func(t *testing.T) {
		// API --zmq-connect → forwarder → two hand-started workers behind a TCP balancer,
		// which --ws-conn-string hands to browsers (the docker-compose layout).
		in, out := cluster.ZMQAddr(t), cluster.ZMQAddr(t)
		cluster.StartForwarder(t, b, in, out)
		p1, p2 := cluster.FreePort(t), cluster.FreePort(t)
		lb := cluster.StartBalancer(t, p1, p2)
		s := cluster.StartServer(t, b, cluster.ServerOptions{NoWSStart: true, ZMQAddr: in, ZMQConnect: true,
			Extra: []string{"--ws-conn-string", wsURLOf(lb)}})
		for _, p := range []int{p1, p2} {
			cluster.StartWorker(t, b, cluster.WorkerOptions{Port: p, ZMQAddr: out, APIRoot: s.Root})
		}
		apitest.SingleUser(t, target(s, false))
		// The suite opens one websocket; check that both workers behind the balancer
		// deliver.
		doc := cluster.NewSeqDoc(t, s.Root, "behind-balancer", 1, 5)
		v := cluster.NewValidator()
		for i := 0; i < 4; i++ {
			dialLive(t, cluster.LiveOptions{Root: s.Root, Topic: doc.Topic, Auth: doc.ReadKey,
				Log: v.NewClient(fmt.Sprintf("client %d through the balancer", i), true)})
		}
		mustAllOK(t, "through the balancer", doc.WriteRange(v, 0, 1, 20, 0), 20)
		waitCaughtUp(t, v)
		sum := v.Check(t, doc.Stored(t))
		st1, st2 := cluster.GetWorkerStats(t, p1), cluster.GetWorkerStats(t, p2)
		if st1.Delivered == 0 || st2.Delivered == 0 {
			t.Errorf("a worker behind the balancer delivered nothing: :%d %d, :%d %d", p1, st1.Delivered, p2, st2.Delivered)
		}
		t.Logf("through the balancer: worker :%d %d connections, %d deliveries; worker :%d %d connections, %d deliveries; validator: %s",
			p1, st1.ConnectionsTotal, st1.Delivered, p2, st2.ConnectionsTotal, st2.Delivered, sum)
	})
}
