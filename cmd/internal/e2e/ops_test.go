package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// childrenNamed returns the live children of pid whose command line contains name.
func childrenNamed(pid int, name string) []int {
	var out []int
	for _, c := range cluster.ChildPids(pid) {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline")
		if strings.Contains(string(cmdline), name) {
			out = append(out, c)
		}
	}
	return out
}

// waitGone waits (bounded) until none of pids is alive.
func waitGone(t *testing.T, pids []int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for cluster.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still running", what, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestManagedRedis(t *testing.T) {
	b := cluster.Build(t)
	port := cluster.FreePort(t)
	dir := t.TempDir()
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", StartRedis: true, RedisPort: port, DataDir: dir})
	redisPids := childrenNamed(s.Pid(), "redis-server")
	if len(redisPids) != 1 {
		t.Fatalf("want one managed redis-server child, found %v", redisPids)
	}
	c := apitest.NewPyClient(s.Root)
	c.UseDoc(t, "managed")
	ctx, _ := c.LoadDocument(t)
	plot := apitest.NewPlot(c.DocID, ctx.ID, 20)
	if r := c.Push(t, apitest.MarshalModels(t, plot.Models)); r.Status != 200 {
		t.Fatalf("push: %d", r.Status)
	}

	s.Stop(t)
	if err := s.ExitError(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	waitGone(t, redisPids, "managed redis after shutdown")

	s.Restart(t)
	again := apitest.NewPyClient(s.Root)
	again.UseDoc(t, "managed")
	if again.DocID != c.DocID || len(again.Pull(t)) != len(plot.Models) {
		t.Fatalf("after restart: doc %s, %d models", again.DocID, len(again.Pull(t)))
	}

	redisPids = childrenNamed(s.Pid(), "redis-server")
	s.Kill(t)
	waitGone(t, redisPids, "managed redis after kill -9 of bokeh-server")
}

// startFails runs bokeh-server expecting it to exit with an error mentioning want.
func startFails(t *testing.T, want string, args ...string) {
	t.Helper()
	b := cluster.Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"--port", strconv.Itoa(cluster.FreePort(t)), "--data-dir", t.TempDir(), "--no-ws-start",
		"--zmqaddr", cluster.ZMQAddr(t)}
	out, err := exec.CommandContext(ctx, b.Server, append(base, args...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("bokeh-server %v: err %v, output lacks %q:\n%s", args, err, want, out)
	}
}

func TestManagedRedisClearErrors(t *testing.T) {
	startFails(t, "not found", "--backend", "redis", "--redis-server", "/nonexistent/redis-server")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	startFails(t, "is taken", "--backend", "redis", "--redis-port", port)
	startFails(t, "--backend", "--backend", "sqlite")
}

// TestExternalRedisOutage kills redis in the middle of a stream of writes: writes during the
// outage get a quick 503, writes recover after redis returns without restarting the API, and
// every acknowledged write is still there.
func TestExternalRedisOutage(t *testing.T) {
	b := cluster.Build(t)
	rs := redistest.Start(t, redistest.WithAOF())
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: rs.Port, NoWSStart: true})
	c := apitest.NewPyClient(s.Root)
	c.UseDoc(t, "outage")
	c.LoadDocument(t)

	acked := map[string]bool{}
	write := func(i int) int {
		id := fmt.Sprintf("r%04d", i)
		body := fmt.Sprintf(`[{"type": "Range1d", "attributes": {"id": %q, "start": %d}}]`, id, i)
		r := c.Push(t, []byte(body))
		if r.Status == 200 {
			acked[id] = true
		}
		return r.Status
	}
	for i := 0; i < 50; i++ {
		if st := write(i); st != 200 {
			t.Fatalf("write %d before the outage: %d", i, st)
		}
	}
	rs.Kill()
	var during []int
	for i := 50; i < 55; i++ {
		during = append(during, write(i))
	}
	for i, st := range during {
		if st != http.StatusServiceUnavailable {
			t.Errorf("write %d during the outage: %d, want 503", 50+i, st)
		}
	}
	if r := c.Push(t, []byte(`[{"type": "Range1d", "attributes": {"id": "hint", "start": 0}}]`)); r.Status != http.StatusServiceUnavailable ||
		r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "repeating it is safe") {
		t.Errorf("a refused write says how to go on: %d, Retry-After %q, %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	ready := apitest.Get(t, s.Base+"/readyz", nil)
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(string(ready.Body), "storage") {
		t.Errorf("/readyz during the outage: %d %s", ready.Status, ready.Body)
	}
	rs.Restart(t)
	// go-redis redials in the background; allow a loaded machine plenty of time.
	recovered, last := false, 0
	deadline := time.Now().Add(30 * time.Second)
	for i := 55; !recovered && time.Now().Before(deadline); i++ {
		last = write(i)
		recovered = last == 200
		if !recovered {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !recovered {
		t.Fatalf("writes did not recover within 30 s after redis came back (last status %d; /readyz: %s)",
			last, apitest.Get(t, s.Base+"/readyz", nil).Body)
	}
	if r := apitest.Get(t, s.Base+"/readyz", nil); r.Status != 200 {
		t.Errorf("/readyz after recovery: %d", r.Status)
	}
	// The written models are unreachable from the PlotContext, so the API does not serve
	// them; read redis (db 2, the original layout) directly.
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, DB: 2})
	defer rdb.Close()
	for id := range acked {
		if n, err := rdb.Exists(context.Background(), "bbmodel:Range1d:"+c.DocID+":"+id).Result(); err != nil || n != 1 {
			t.Errorf("acknowledged write %s lost (%v)", id, err)
		}
	}
	t.Logf("%d writes acknowledged, %d refused with 503 during the outage, none lost", len(acked), len(during))
	metrics := string(apitest.Get(t, s.Base+"/metrics", nil).Body)
	if !strings.Contains(metrics, `bokeh_request_failures_total{kind="unavailable"}`) {
		t.Errorf("/metrics does not count the outage")
	}
}

// TestSIGTERMDrains checks graceful shutdown: workers close websockets with "going away",
// bokeh-server exits 0 and leaves no child behind.
func TestSIGTERMDrains(t *testing.T) {
	s := cluster.StartServer(t, cluster.Build(t), cluster.ServerOptions{Workers: 2})
	workers := childrenNamed(s.Pid(), "ws-worker")
	if len(workers) != 2 {
		t.Fatalf("want 2 worker children, found %v", workers)
	}
	var clients []*cluster.WSClient
	for i := 0; i < 4; i++ {
		clients = append(clients, cluster.Dial(t, cluster.WSURL(t, s.Root), true))
	}
	s.Stop(t)
	if err := s.ExitError(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.Closed():
			case <-time.After(15 * time.Second):
			}
		}()
	}
	wg.Wait()
	for i, c := range clients {
		if !websocket.IsCloseError(c.Err(), websocket.CloseGoingAway) {
			t.Errorf("client %d closed with %v, want 1001 going away", i, c.Err())
		}
	}
	waitGone(t, workers, "worker after SIGTERM")
}

// TestKill9LeavesNoWorker: workers die with bokeh-server even when it cannot clean up.
func TestKill9LeavesNoWorker(t *testing.T) {
	s := cluster.StartServer(t, cluster.Build(t), cluster.ServerOptions{Workers: 2})
	workers := childrenNamed(s.Pid(), "ws-worker")
	if len(workers) != 2 {
		t.Fatalf("want 2 worker children, found %v", workers)
	}
	s.Kill(t)
	waitGone(t, workers, "worker after kill -9 of bokeh-server")
}
