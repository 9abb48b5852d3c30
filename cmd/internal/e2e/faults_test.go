package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// The fault suite: processes are killed and restarted under load, and the validator checks
// that no acknowledged write is lost and every client ends at the stored state.

// TestFaultWorkerKilledMidStream: kill -9 of a worker while a document streams. Its clients
// reconnect like our pages (wsurl with backoff, resubscribe, reload over HTTP, then the
// queued pushes); every client ends at the last acknowledged write, and clients of the other
// worker lose nothing.
func TestFaultWorkerKilledMidStream(t *testing.T) {
	const (
		clients = 20
		writes  = 300
		killAt  = 100
		pace    = 3 * time.Millisecond
	)
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 2})
	doc := cluster.NewSeqDoc(t, s.Root, "kill-mid-stream", 1, 20)
	v := cluster.NewValidator()
	victim := s.WSPort
	var lcs []*cluster.LiveClient
	var onVictim []bool
	for i := 0; i < clients; i++ {
		url := cluster.WSURL(t, s.Root)
		port := cluster.URLPort(url)
		log := v.NewClient(fmt.Sprintf("client %d (first on :%d)", i, port), port != victim)
		lcs = append(lcs, dialLive(t, cluster.LiveOptions{Root: s.Root, URL: url, Topic: doc.Topic, Auth: doc.ReadKey,
			Reconnect: true, Reload: doc.Streams(), Log: log}))
		onVictim = append(onVictim, port == victim)
	}
	pid := workerPid(t, s, victim)

	done := make(chan []cluster.WriteResult, 1)
	go func() { done <- doc.WriteRange(v, 0, 1, writes, pace) }()
	for deadline := time.Now().Add(30 * time.Second); len(v.AckedSeqs(doc.Stream(0))) < killAt && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	killed := time.Now()
	mustAllOK(t, "stream", <-done, writes)
	wroteAfterKill := time.Since(killed)
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))

	var reconnects, failed, victims int
	var slowest time.Duration
	ports := map[int]int{}
	for i, c := range lcs {
		ok, bad := c.Reconnects()
		reconnects += ok
		failed += bad
		ports[c.Port()]++
		switch {
		case onVictim[i]:
			victims++
			slowest = max(slowest, c.LastReconnect().Sub(killed))
			if ok < 1 {
				t.Errorf("client %d of the killed worker did not reconnect (%v)", i, c.Err())
			}
		case ok != 0:
			t.Errorf("client %d of the surviving worker reconnected %d times", i, ok)
		}
	}
	t.Logf("killed worker :%d (pid %d) after %d of %d writes; %d of its clients reconnected %d times (%d failed attempts), the last %v after the kill; ports now %v; writes ended %v after the kill, all clients at the last write %v after that; validator: %s",
		victim, pid, killAt, writes, victims, reconnects, failed, slowest.Round(time.Millisecond), ports, wroteAfterKill.Round(time.Millisecond), caught.Round(time.Millisecond), sum)
}

// redisModelKey is where the redis backend keeps a model (db 2, the original's layout).
func redisModelKey(typ, docid, id string) string { return "bbmodel:" + typ + ":" + docid + ":" + id }

// marker is an extra model in each write, one per seq, so that every acknowledged write
// leaves its own key in redis.
func marker(docid string, seq int64) (id, model string) {
	id = fmt.Sprintf("w%05d", seq)
	return id, fmt.Sprintf(`{"type": "Range1d", "id": %q, "attributes": {"id": %q, "doc": %q, "start": %d}}`, id, id, docid, seq)
}

// outage describes how a redis outage is caused and ended in TestFaultRedisRestartMidStream.
type outage struct {
	server        *cluster.Server
	redisAddr     string
	redisPassword string
	// clientsStay: the websocket clients must not notice the outage at all.
	clientsStay bool
	down        func(t *testing.T)
	up          func(t *testing.T)
}

// TestFaultRedisRestartMidStream: redis goes away in the middle of a stream. Writes during
// the outage are refused with 503 at once and leave nothing behind, no write acknowledged
// before or after is lost (checked in redis itself), and writes recover.
func TestFaultRedisRestartMidStream(t *testing.T) {
	b := cluster.Build(t)
	t.Run("External", func(t *testing.T) {
		rs := redistest.Start(t, redistest.WithAOF())
		s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: rs.Port})
		redisOutage(t, outage{server: s, redisAddr: rs.Addr, clientsStay: true,
			down: func(*testing.T) { rs.Kill() },
			up:   func(t *testing.T) { rs.Restart(t) }})
	})
	t.Run("Managed", func(t *testing.T) {
		port := cluster.FreePort(t)
		s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", StartRedis: true, RedisPort: port})
		var redisPid int
		redisOutage(t, outage{server: s, redisAddr: fmt.Sprintf("127.0.0.1:%d", port),
			redisPassword: s.ManagedRedisPassword(t),
			down: func(t *testing.T) {
				pids := childrenNamed(s.Pid(), "redis-server")
				if len(pids) != 1 {
					t.Fatalf("managed redis-server children: %v", pids)
				}
				redisPid = pids[0]
				// A restart, not a crash: the managed redis fsyncs its append-only file every
				// second (as the issue asks), so a kill -9 during an fsync stall could lose
				// acknowledged writes inside redis itself. The external case above kills.
				if err := syscall.Kill(redisPid, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				waitGone(t, pids, "managed redis after SIGTERM")
			},
			up: func(t *testing.T) {
				// bokeh-server supervises its redis and must bring it back by itself.
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if pids := childrenNamed(s.Pid(), "redis-server"); len(pids) > 0 {
						t.Logf("bokeh-server restarted its managed redis (pid %d, was %d)", pids[0], redisPid)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				ready := apitest.Get(t, s.Base+"/readyz", nil)
				t.Fatalf("bokeh-server did not restart its managed redis; /readyz %d %q; log: %q",
					ready.Status, strings.TrimSpace(string(ready.Body)), logLine(s.Proc, "managed redis"))
			}})
	})
}

func redisOutage(t *testing.T, o outage) {
	const (
		before, during, after = 40, 5, 40
		clients               = 5
		maxRecovery           = 200
	)
	s := o.server
	doc := cluster.NewSeqDoc(t, s.Root, "redis-outage", 1, 20)
	v := cluster.NewValidator()
	var lcs []*cluster.LiveClient
	var logs []*cluster.ClientLog
	for i := 0; i < clients; i++ {
		log := v.NewClient(fmt.Sprintf("client %d", i), o.clientsStay)
		logs = append(logs, log)
		lcs = append(lcs, dialLive(t, cluster.LiveOptions{Root: s.Root, Topic: doc.Topic, Auth: doc.ReadKey,
			Reconnect: true, Reload: doc.Streams(), Log: log}))
	}
	seq := int64(0)
	var acked, refused []int64
	write := func() cluster.WriteResult {
		seq++
		_, m := marker(doc.DocID, seq)
		r := doc.Write(v, 0, seq, m)
		if r.Status == http.StatusOK {
			acked = append(acked, seq)
		} else {
			refused = append(refused, seq)
		}
		return r
	}
	for i := 0; i < before; i++ {
		if r := write(); r.Status != http.StatusOK {
			t.Fatalf("write %d before the outage: %d %v", r.Seq, r.Status, r.Err)
		}
	}
	o.down(t)
	var took []string
	for i := 0; i < during; i++ {
		r := write()
		took = append(took, fmt.Sprintf("%d in %v", r.Status, r.Took.Round(time.Microsecond)))
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("write %d during the outage: %d (%v), want 503", r.Seq, r.Status, r.Err)
		}
	}
	if r := apitest.Get(t, s.Base+"/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d %s", r.Status, r.Body)
	}
	upStart := time.Now()
	o.up(t)
	var recovery []int
	recovered := false
	for i := 0; i < maxRecovery && !recovered; i++ {
		r := write()
		recovery = append(recovery, r.Status)
		if recovered = r.Status == http.StatusOK; !recovered {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !recovered {
		t.Fatalf("writes did not recover after redis came back: %v", recovery)
	}
	recoveredIn := time.Since(upStart)
	for i := 0; i < after; i++ {
		if r := write(); r.Status != http.StatusOK {
			t.Fatalf("write %d after the outage: %d %v", r.Seq, r.Status, r.Err)
		}
	}
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))

	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr, Password: o.redisPassword, DB: 2})
	defer rdb.Close()
	ctx := context.Background()
	for _, sq := range acked {
		id, _ := marker(doc.DocID, sq)
		if n, err := rdb.Exists(ctx, redisModelKey("Range1d", doc.DocID, id)).Result(); err != nil || n != 1 {
			t.Errorf("acknowledged write %d lost in redis (%v)", sq, err)
		}
	}
	for _, sq := range refused {
		id, _ := marker(doc.DocID, sq)
		if n, err := rdb.Exists(ctx, redisModelKey("Range1d", doc.DocID, id)).Result(); err != nil || n != 0 {
			t.Errorf("write %d was refused but is in redis (%v)", sq, err)
		}
	}
	stream, err := rdb.Get(ctx, redisModelKey("ColumnDataSource", doc.DocID, doc.IDs[0])).Result()
	if last := acked[len(acked)-1]; err != nil || !strings.Contains(stream, fmt.Sprintf(`"seq": %d,`, last)) {
		t.Errorf("redis holds the stream at %.80s (%v), want seq %d", stream, err, last)
	}
	var reconnects int
	for _, c := range lcs {
		ok, _ := c.Reconnects()
		reconnects += ok
	}
	if o.clientsStay && reconnects != 0 {
		t.Errorf("websocket clients reconnected %d times though no worker went away", reconnects)
	}
	t.Logf("%d writes acknowledged, %d refused; during the outage: %s; recovery: %d attempts %v (statuses %v) in %v; clients reconnected %d times, caught up %v after the last write; validator: %s; redis checked for every write",
		len(acked), len(refused), strings.Join(took, ", "), len(recovery), recovery[len(recovery)-1], compact(recovery), recoveredIn.Round(time.Millisecond), reconnects, caught.Round(time.Millisecond), sum)
}

// compact summarises a list of statuses as status×count runs.
func compact(sts []int) string {
	var parts []string
	for i := 0; i < len(sts); {
		j := i
		for j < len(sts) && sts[j] == sts[i] {
			j++
		}
		parts = append(parts, fmt.Sprintf("%d×%d", sts[i], j-i))
		i = j
	}
	return strings.Join(parts, " ")
}

// TestFaultStalledClientLatency: a stalled client is closed by its send-queue limit or write
// deadline. The other clients' delivery latency is measured with and without it under the
// same workload and logged (the issue asks for "within 10 %"; not asserted, machines vary).
func TestFaultStalledClientLatency(t *testing.T) {
	const (
		readers = 10
		writes  = 400 // the stalled client is closed after ~250
		pace    = 3 * time.Millisecond
		points  = 2000 // ~14 KB per push
	)
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{NoWSStart: true})
	w := cluster.StartWorker(t, b, cluster.WorkerOptions{ZMQAddr: s.Opts.ZMQAddr, APIRoot: s.Root,
		Extra: []string{"--max-queue-bytes", slowQueue, "--write-timeout", "2s"}})
	doc := cluster.NewSeqDoc(t, s.Root, "stalled-latency", 1, points)

	type figures struct {
		p50, p99, max time.Duration
		samples       int
	}
	phase := func(name string, from int64, writes int64, stalled bool) figures {
		v := cluster.NewValidator()
		var lcs []*cluster.LiveClient
		for i := 0; i < readers; i++ {
			lcs = append(lcs, dialLive(t, cluster.LiveOptions{Root: s.Root, URL: wsURLOf(w.Port), Topic: doc.Topic,
				Auth: doc.ReadKey, Log: v.NewClient(fmt.Sprintf("%s reader %d", name, i), true)}))
		}
		closes := cluster.GetWorkerStats(t, w.Port).SlowClientCloses
		want := int64(readers)
		if stalled {
			cluster.DialStalled(t, wsURLOf(w.Port), doc.Topic, doc.ReadKey)
			want++
		}
		waitStats(t, w.Port, "all subscribed", func(st cluster.WorkerStats) bool { return st.Subscriptions == want })
		mustAllOK(t, name, doc.WriteRange(v, 0, from, from+writes-1, pace), int(writes))
		waitCaughtUp(t, v)
		v.Check(t, doc.Stored(t))
		if stalled {
			waitStats(t, w.Port, "the stalled client closed", func(st cluster.WorkerStats) bool { return st.SlowClientCloses > closes })
		} else if st := cluster.GetWorkerStats(t, w.Port); st.SlowClientCloses != closes {
			t.Errorf("%s: %d slow-client closes without a stalled client", name, st.SlowClientCloses-closes)
		}
		lat := v.Latencies(v.Clients())
		for _, c := range lcs {
			c.Close()
		}
		waitStats(t, w.Port, "no client left", func(st cluster.WorkerStats) bool { return st.ConnectionsCurrent == 0 })
		return figures{cluster.Percentile(lat, 50), cluster.Percentile(lat, 99), cluster.Percentile(lat, 100), len(lat)}
	}
	phase("warm-up", 1, 100, false) // first connections, TCP windows, caches: not measured
	base := phase("baseline", 10001, writes, false)
	withStalled := phase("with a stalled client", 20001, writes, true)
	ratio := float64(withStalled.p99) / float64(base.p99)
	// Not a speed figure (bokeh-bench measures those) but head-of-line blocking: had the
	// stalled client held up the others, their pushes would have waited for its write
	// timeout (2 s). Half of it is far beyond any noise of this machine.
	if withStalled.p99 > time.Second {
		t.Errorf("with a stalled client, p99 delivery latency %v (without %v): the others waited for it", withStalled.p99, base.p99)
	}
	t.Logf("worker log: %s", logLine(w.Proc, "slow consumer"))
	t.Logf("delivery latency to %d readers, %d pushes of %d bytes every %v: without a stalled client p50 %v p99 %v max %v (%d samples); with one p50 %v p99 %v max %v (%d samples); p99 ratio %.2f",
		readers, writes, len(doc.WriteBody(0, 1)), pace,
		base.p50.Round(time.Microsecond), base.p99.Round(time.Microsecond), base.max.Round(time.Microsecond), base.samples,
		withStalled.p50.Round(time.Microsecond), withStalled.p99.Round(time.Microsecond), withStalled.max.Round(time.Microsecond), withStalled.samples, ratio)
}

// TestFaultRestartKeepsData: documents, accounts and keys survive a restart of bokeh-server
// on every persistent backend, in multi-user mode.
func TestFaultRestartKeepsData(t *testing.T) {
	b := cluster.Build(t)
	t.Run("Shelve", func(t *testing.T) {
		restartKeepsData(t, cluster.StartServer(t, b, cluster.ServerOptions{Backend: "shelve", MultiUser: true}))
	})
	t.Run("RedisManaged", func(t *testing.T) {
		restartKeepsData(t, cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", MultiUser: true,
			StartRedis: true, RedisPort: cluster.FreePort(t)}))
	})
	t.Run("RedisExternal", func(t *testing.T) {
		rs := redistest.Start(t, redistest.WithAOF())
		restartKeepsData(t, cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", MultiUser: true, RedisPort: rs.Port}))
	})
}

func restartKeepsData(t *testing.T, s *cluster.Server) {
	user, password := "carol", "pw-carol"
	alice := apitest.NewPyClient(s.Root)
	if out := alice.Register(t, user, password); out["status"] != true {
		t.Fatalf("register: %v", out)
	}
	userKey := alice.UserAPIKey
	alice.UseDoc(t, "kept")
	ctx, _ := alice.LoadDocument(t)
	plot := apitest.NewPlot(alice.DocID, ctx.ID, 30)
	if r := alice.Push(t, apitest.MarshalModels(t, plot.Models)); r.Status != http.StatusOK {
		t.Fatalf("push: %d", r.Status)
	}
	keys := func(c *apitest.PyClient) (map[string]string, string) {
		var k map[string]string
		if r := c.Do(t, "GET", "bokeh/getdocapikey/"+c.DocID, nil, true); r.Status != http.StatusOK {
			t.Fatalf("getdocapikey: %d", r.Status)
		} else {
			r.JSON(t, &k)
		}
		var info struct {
			APIKey string `json:"apikey"`
		}
		if r := c.Do(t, "GET", "bokeh/bokehinfo/"+c.DocID+"/", nil, true); r.Status != http.StatusOK {
			t.Fatalf("bokehinfo: %d", r.Status)
		} else {
			r.JSON(t, &info)
		}
		return k, info.APIKey
	}
	docKeys, readKey := keys(alice)
	models := len(alice.Pull(t))

	s.Restart(t)

	again := apitest.NewPyClient(s.Root)
	if out := again.Login(t, user, password); out["status"] != true || out["userapikey"] != userKey {
		t.Fatalf("login after restart: %v (user key before: %s)", out, userKey)
	}
	again.UseDoc(t, "kept")
	if again.DocID != alice.DocID {
		t.Fatalf("after restart use_doc found %s, want %s", again.DocID, alice.DocID)
	}
	k2, read2 := keys(again)
	if !maps.Equal(k2, docKeys) || read2 != readKey {
		t.Errorf("document keys changed across the restart: %v/%s -> %v/%s", docKeys, readKey, k2, read2)
	}
	if n := len(again.Pull(t)); n != models {
		t.Errorf("after restart %d models, want %d", n, models)
	}
	// The session cookie from before the restart is still good (sessions are signed with
	// the shared secret).
	sessionOK := alice.Do(t, "GET", "bokeh/userinfo/", nil, true).Status == http.StatusOK
	// The read-only key from before the restart still opens the document's websocket topic.
	w := cluster.Watch(s.Root)(t, "bokehplot:"+alice.DocID, readKey)
	if r := again.Push(t, apitest.SourceUpdate(again.DocID, plot.Source, 30, 1)); r.Status != http.StatusOK {
		t.Fatalf("push after restart: %d", r.Status)
	}
	if f, ok := w.Next(t, catchUpWait); !ok || !strings.Contains(f, plot.Source.ID) {
		t.Errorf("no push after restart (%v): %.100s", w.Err(), f)
	}
	t.Logf("%s: user %s (login, same user key), doc %s with %d models and keys %v + read-only %s survived the restart; old session cookie valid: %v",
		s.Opts.Backend, user, alice.DocID, models, slices.Sorted(maps.Keys(docKeys)), readKey[:8]+"…", sessionOK)
}

// raiseNoFile raises the soft limit of open files to at least n if the hard limit allows;
// children (bokeh-server and its workers) inherit it.
func raiseNoFile(t *testing.T, n uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur < n {
		was := lim.Cur
		lim.Cur = min(n, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("setrlimit nofile %d: %v", lim.Cur, err)
		}
		t.Logf("raised the open-file limit from %d to %d", was, lim.Cur)
	}
	return lim.Cur
}

// TestFaultThousandClients: 1,000 websocket clients connecting at once (as after a worker
// restart) all get their subscription, and one publish reaches every one of them.
func TestFaultThousandClients(t *testing.T) {
	const n = 1000
	// The test holds n client sockets; each worker about n/2 plus its own.
	if limit := raiseNoFile(t, 4*n); limit < 2*n+200 {
		t.Fatalf("open-file limit %d is too low for %d websocket clients (ulimit -n)", limit, n)
	}
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 2})
	doc := cluster.NewSeqDoc(t, s.Root, "thousand", 1, 5)
	v := cluster.NewValidator()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lcs := make([]*cluster.LiveClient, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lcs[i], errs[i] = cluster.DialLive(ctx, cluster.LiveOptions{Root: s.Root, Topic: doc.Topic, Auth: doc.ReadKey,
				Log: v.NewClient(fmt.Sprintf("client %d", i), true)})
		}()
	}
	wg.Wait()
	connected := time.Since(start)
	t.Cleanup(func() {
		var cw sync.WaitGroup
		for _, c := range lcs {
			if c != nil {
				cw.Add(1)
				go func() { defer cw.Done(); c.Close() }()
			}
		}
		cw.Wait()
	})
	var failures []string
	ports := map[int]int{}
	for i, err := range errs {
		if err != nil {
			failures = append(failures, fmt.Sprintf("client %d: %v", i, err))
			continue
		}
		ports[lcs[i].Port()]++
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d clients failed to subscribe within 30 s:\n  %s", len(failures), n, strings.Join(failures[:min(10, len(failures))], "\n  "))
	}
	if len(ports) != 2 {
		t.Errorf("clients not spread over both workers: %v", ports)
	}
	if r := doc.Write(v, 0, 1); r.Status != http.StatusOK {
		t.Fatalf("publish: %d %v", r.Status, r.Err)
	}
	waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))
	lat := v.Latencies(v.Clients())
	t.Logf("%d clients connected and subscribed concurrently in %v (spread %v); one publish reached %d of them, the last %v after the write started (p50 %v); validator: %s",
		n, connected.Round(time.Millisecond), ports, len(lat), cluster.Percentile(lat, 100).Round(time.Microsecond),
		cluster.Percentile(lat, 50).Round(time.Microsecond), sum)
}

// TestFaultReconnectReloadOrder: a page that (re)subscribes must reload the document only
// after subscribesuccess: only then do pushes of every later write reach it. Clients
// connect one after another while a writer streams, so that each is the worker's first
// subscriber of the document (as after a worker restart). Reloading after subscribesuccess
// never misses a write; reloading right after sending subscribe, as api/web/static/live.js
// does, misses the writes published before the subscription took effect — reported, not
// asserted, until live.js waits for subscribesuccess.
func TestFaultReconnectReloadOrder(t *testing.T) {
	const connections = 100
	b := cluster.Build(t)
	s := cluster.StartServer(t, b, cluster.ServerOptions{Workers: 1})
	doc := cluster.NewSeqDoc(t, s.Root, "reload-order", 1, 5)
	for round, early := range []bool{false, true} {
		offset := int64(round) * 1_000_000 // seqs keep increasing across rounds
		v := cluster.NewValidator()
		stop, done := make(chan struct{}), make(chan []cluster.WriteResult)
		go func() {
			var rs []cluster.WriteResult
			for seq := int64(1); ; seq++ {
				select {
				case <-stop:
					done <- rs
					return
				default:
				}
				rs = append(rs, doc.Write(v, 0, offset+seq))
			}
		}()
		for i := 0; i < connections; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c, err := cluster.DialLive(ctx, cluster.LiveOptions{Root: s.Root, Topic: doc.Topic, Auth: doc.ReadKey,
				Reload: doc.Streams(), ReloadFirst: true, ReloadEarly: early,
				Log: v.NewClient(fmt.Sprintf("connection %d", i), false)})
			cancel()
			if err != nil {
				close(stop)
				<-done
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			c.Close()
		}
		close(stop)
		rs := <-done
		for _, r := range rs {
			if r.Status != http.StatusOK {
				t.Fatalf("write %d: %d %v", r.Seq, r.Status, r.Err)
			}
		}
		// The connections closed mid-stream, so their final states are old; count the
		// writes missed between a reload and the first push.
		var missed []string
		for _, p := range v.Validate(nil).Problems {
			if strings.Contains(p, "missed") {
				missed = append(missed, p)
			} else if !strings.Contains(p, "final state") {
				t.Errorf("%s", p)
			}
		}
		switch {
		case !early && len(missed) > 0:
			t.Errorf("reloading after subscribesuccess: %d of %d connections missed writes, e.g. %s", len(missed), connections, missed[0])
		case !early:
			t.Logf("reload after subscribesuccess: %d connections during %d writes, none missed a write", connections, len(rs))
		case len(missed) > 0:
			t.Logf("FINDING: reload right after sending subscribe (live.js order): %d of %d connections missed writes, e.g. %s", len(missed), connections, missed[0])
		default:
			t.Logf("reload right after sending subscribe (live.js order): no connection of %d missed a write this time", connections)
		}
	}
}
