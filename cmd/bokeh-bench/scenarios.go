package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Figure names shared by the scenarios, the limits and the targets.
const (
	figUpd1      = "updates/s, 1 writer"
	figLat50     = "push latency p50"
	figLat99     = "push latency p99"
	figLat999    = "push latency p999"
	figLost      = "frames lost"
	figAPICPU    = "API CPU per update"
	figWorkerCPU = "worker CPU per update"
	figSrvCPU    = "server CPU busy, max rate"
	figCliCPU    = "load generator CPU busy, max rate"
	figSrvCPUFix = "server CPU busy, fixed rate"
	figCliCPUFix = "load generator CPU busy, fixed rate"

	figMaxRate = "deliveries/s, max rate"
	figMax50   = "latency p50, max rate"
	figMax99   = "latency p99, max rate"
	figMax999  = "latency p999, max rate"
	figMaxDrop = "drops, max rate"
	figFixRate = "deliveries/s, fixed rate"
	figFix50   = "latency p50, fixed rate"
	figFix99   = "latency p99, fixed rate"
	figFix999  = "latency p999, fixed rate"
	figFixDrop = "drops, fixed rate"

	figIdleConn = "RSS growth per connection"
	figIdle1000 = "RSS growth per 1,000 connections"

	figZMQRate = "messages/s"
	figZMQ50   = "latency p50, one at a time"
	figZMQ99   = "latency p99, one at a time"
	figZMQ999  = "latency p999, one at a time"
)

func figUpdN(n int) string { return fmt.Sprintf("updates/s, %d writers", n) }
func figPaced(p string, rate float64) string {
	return fmt.Sprintf("push latency %s at %s/s", p, thousands(int64(rate)))
}
func figUpdN50(n int) string     { return fmt.Sprintf("push latency p50, %d writers", n) }
func figUpdN99(n int) string     { return fmt.Sprintf("push latency p99, %d writers", n) }
func fanoutCase(s, w int) string { return fmt.Sprintf("S=%d W=%d", s, w) }

// topologyFor starts (or attaches to) an API with workers, pinned to workerCPUs.
func (e *env) topologyFor(backend string, workers int, workerCPUs []int) (*topology, error) {
	if e.o.attach {
		return attachedTopology(e.o.apiURL, e.o.wsURLs[:min(workers, len(e.o.wsURLs))], e.o.workerPIDs), nil
	}
	e.log("starting bokeh-server --backend %s and %d ws-worker(s)", backend, workers)
	return e.l.startTopology(backend, workers, workerCPUs)
}

func title(what string) string { return "bench-" + what + "-" + uuid.NewString()[:8] }

// update is scenario 1, per backend.
func (e *env) update() error {
	backends := e.o.backends
	if e.o.attach {
		backends = []string{"attached"}
	}
	var failed []string
	for _, b := range backends {
		if err := e.updateBackend(b); err != nil {
			e.rep.Errors = append(e.rep.Errors, "update "+b+": "+err.Error())
			e.log("update %s failed: %v", b, err)
			failed = append(failed, b)
		}
		e.l.stopAll()
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed backends %v", failed)
	}
	return nil
}

func (e *env) updateBackend(backend string) error {
	t, err := e.topologyFor(backend, 1, e.split.UpdateWorker)
	if err != nil {
		return err
	}
	defer t.stop()
	api := newAPIClient(t.apiRoot, e.o.writers+2)
	defer api.close()
	doc, err := api.makeDoc(title("update"))
	if err != nil {
		return err
	}
	bodies, err := newSourceBodies(doc.id, e.o.points, 8)
	if err != nil {
		return err
	}
	first, err := initialPlot(doc, bodies)
	if err != nil {
		return err
	}
	if err := doc.push(first); err != nil {
		return err
	}
	sub, err := dialSubscriber(t.wsURLs[0], doc.topic, doc.readKey)
	if err != nil {
		return err
	}
	defer sub.close()
	subs := []*subscriber{sub}
	seqs := &seqCounter{}
	seqs.next.Store(1)
	posters, err := newRawPosters(max(e.o.writers, 1), t.apiRoot, doc.id)
	if err != nil {
		return err
	}
	defer posters.close()
	publish := func(i int, buf []byte, seq uint64) ([]byte, error) {
		buf = bodies.body(buf, seq)
		return buf, posters[i].post(buf)
	}
	e.log("update %s: %d-point source, %d KB bodies; warming up", backend, e.o.points, len(bodies.body(nil, 1))/1024)
	warm := phase{duration: min(500*time.Millisecond, e.o.duration), maxMsgs: 5000, publishers: 1, subs: subs, expect: 1, publish: publish}
	warm.run(seqs)

	r := e.rep.row("update", backend)
	for run := range e.o.runs {
		one := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: 1, subs: subs, expect: 1, publish: publish}
		res := one.run(seqs)
		lat := percentiles(res.latencies(), 50, 99, 99.9)
		r.set(figUpd1, "/s", res.sendRate())
		r.set(figLat50, "ms", lat[0])
		r.set(figLat99, "ms", lat[1])
		r.set(figLat999, "ms", lat[2])

		// The loop above runs the API flat out (each update follows the previous answer), so
		// its latencies include waiting for a saturated CPU; a paced stream shows the push
		// path itself, as a plot streaming live data would see it.
		paced := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: 2, rate: e.o.updateRate,
			subs: subs, expect: 1, publish: publish}
		resP := paced.run(seqs)
		latP := percentiles(resP.latencies(), 50, 99, 99.9)
		r.set(figPaced("p50", e.o.updateRate), "ms", latP[0])
		r.set(figPaced("p99", e.o.updateRate), "ms", latP[1])
		r.set(figPaced("p999", e.o.updateRate), "ms", latP[2])

		cpu0 := e.cpuOf(t)
		// Writers keep at most two updates each not yet at the subscriber: the rate is
		// what reaches the browser, not what the API can take while the worker falls behind.
		many := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: e.o.writers, window: 2 * e.o.writers,
			subs: subs, expect: 1, publish: publish, servers: t.pids()}
		resN := many.run(seqs)
		cpu1 := e.cpuOf(t)
		latN := percentiles(resN.latencies(), 50, 99)
		r.set(figUpdN(e.o.writers), "/s", resN.sendRate())
		r.set(figUpdN50(e.o.writers), "ms", latN[0])
		r.set(figUpdN99(e.o.writers), "ms", latN[1])
		r.set(figLost, "count", float64(res.lost+resP.lost+resN.lost))
		if len(many.servers) > 0 {
			r.set(figSrvCPU, "%", 100*resN.serverCPU)
		}
		r.set(figCliCPU, "%", 100*resN.clientCPU)
		if cpu0 != nil && cpu1 != nil && resN.sent > 0 {
			r.set(figAPICPU, "µs", float64(cpu1[0]-cpu0[0])/1e3/float64(resN.sent))
			r.set(figWorkerCPU, "µs", float64(cpu1[1]-cpu0[1])/1e3/float64(resN.sent))
		}
		if res.errors+resP.errors+resN.errors > 0 {
			r.note("%d failed requests", res.errors+resP.errors+resN.errors)
		}
		if res.dead+resP.dead+resN.dead > 0 {
			return fmt.Errorf("the subscriber's connection ended: %v", sub.err)
		}
		e.log("update %s run %d: %.0f/s (1 writer), %.0f/s (%d writers), p50 %.3f ms p99 %.3f ms, lost %d",
			backend, run+1, res.sendRate(), resN.sendRate(), e.o.writers, lat[0], lat[1], res.lost+resN.lost)
	}
	return nil
}

// cpuOf returns the CPU time used so far by the API and by all workers (nil when attached).
func (e *env) cpuOf(t *topology) []time.Duration {
	if t.api == nil {
		return nil
	}
	api, err := cpuTime(t.api.pid())
	if err != nil {
		return nil
	}
	var workers time.Duration
	for _, w := range t.workers {
		c, err := cpuTime(w.pid())
		if err != nil {
			return nil
		}
		workers += c
	}
	return []time.Duration{api, workers}
}

// fanout is scenario 2.
func (e *env) fanout() error {
	workers := e.o.workers
	if e.o.attach {
		workers = []int{len(e.o.wsURLs)}
	}
	var failed []string
	for _, w := range workers {
		for _, s := range e.o.subscribers {
			if err := e.fanoutCase(s, w); err != nil {
				e.rep.Errors = append(e.rep.Errors, "fanout "+fanoutCase(s, w)+": "+err.Error())
				e.log("fanout %s failed: %v", fanoutCase(s, w), err)
				failed = append(failed, fanoutCase(s, w))
			}
			e.l.stopAll()
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed cases %v", failed)
	}
	return nil
}

func (e *env) fanoutCase(s, w int) error {
	t, err := e.topologyFor("memory", w, e.split.Server)
	if err != nil {
		return err
	}
	defer t.stop()
	api := newAPIClient(t.apiRoot, 8)
	defer api.close()
	doc, err := api.makeDoc(title("fanout"))
	if err != nil {
		return err
	}
	bodies := newSmallBodies(doc.id, e.o.frameBytes)
	if err := doc.push(bodies.body(nil, 0)); err != nil {
		return err
	}
	e.log("fanout %s: opening %d websockets", fanoutCase(s, w), s)
	subs, err := dialMany(s, t.wsURLs, doc.topic, doc.readKey)
	if err != nil {
		return err
	}
	defer closeAll(subs)
	seqs := &seqCounter{}
	seqs.next.Store(1)
	publish := func(_ int, buf []byte, seq uint64) ([]byte, error) {
		buf = bodies.body(buf, seq)
		return buf, doc.post(buf)
	}
	before := workerStats(t)
	warm := phase{duration: min(300*time.Millisecond, e.o.duration), maxMsgs: 1000, publishers: 2, window: e.o.window,
		subs: subs, expect: s, publish: publish}
	warm.run(seqs)

	r := e.rep.row("fanout", fanoutCase(s, w))
	rate := e.o.fanoutRate / float64(s) // messages per second
	for run := range e.o.runs {
		mx := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: 2, window: e.o.window,
			subs: subs, expect: s, publish: publish, servers: t.pids()}
		res := mx.run(seqs)
		lat := r.record(maxRateFigures, &res, len(mx.servers) > 0)

		fx := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: 4, rate: rate,
			subs: subs, expect: s, publish: publish, servers: t.pids()}
		resF := fx.run(seqs)
		latF := r.record(fixedRateFigures, &resF, len(fx.servers) > 0)
		if res.errors+resF.errors > 0 {
			r.note("%d failed publishes", res.errors+resF.errors)
		}
		if res.stalls > 0 {
			r.note("max-rate publisher gave up waiting for %d messages", res.stalls)
		}
		if dead := max(res.dead, resF.dead); dead > 0 {
			r.note("%d subscriber connections ended", dead)
		}
		e.log("fanout %s run %d: max %.0f deliveries/s (p99 %.2f ms, drops %d); fixed %.0f/s asked %.0f/s (p99 %.2f ms, drops %d)",
			fanoutCase(s, w), run+1, res.deliveryRate(), lat[1], res.lost, resF.deliveryRate(), e.o.fanoutRate, latF[1], resF.lost)
	}
	after := workerStats(t)
	if after.SlowClientCloses > before.SlowClientCloses || after.Dropped > before.Dropped {
		r.note("workers dropped %d frames and closed %d slow clients", after.Dropped-before.Dropped,
			after.SlowClientCloses-before.SlowClientCloses)
	}
	r.note("fixed rate %.0f deliveries/s = %.1f messages/s; max rate keeps %d messages in flight; %d-byte frames",
		e.o.fanoutRate, rate, e.o.window, e.o.frameBytes)
	return nil
}

// hubStats is the part of a worker's /stats the benchmark reads.
type hubStats struct {
	Delivered        uint64 `json:"delivered"`
	Dropped          uint64 `json:"dropped"`
	SlowClientCloses uint64 `json:"slow_client_closes"`
}

func workerStats(t *topology) hubStats {
	var sum hubStats
	client := &http.Client{Timeout: 5 * time.Second}
	for _, u := range t.statsURLs {
		if u == "" {
			continue
		}
		resp, err := client.Get(u)
		if err != nil {
			continue
		}
		var s hubStats
		if json.NewDecoder(resp.Body).Decode(&s) == nil {
			sum.Delivered += s.Delivered
			sum.Dropped += s.Dropped
			sum.SlowClientCloses += s.SlowClientCloses
		}
		resp.Body.Close()
	}
	return sum
}

// idle is scenario 3: a fresh worker per run, RSS before and after the connections.
func (e *env) idle() error {
	counts := slices.Clone(e.o.idleConns)
	slices.Sort(counts)
	for run := range e.o.runs {
		t, err := e.topologyFor("memory", 1, e.split.Server)
		if err != nil {
			return err
		}
		pid := t.workerPID[0]
		if pid == 0 {
			return fmt.Errorf("idle needs the worker's process id (--worker-pid) when attached")
		}
		api := newAPIClient(t.apiRoot, 2)
		doc, err := api.makeDoc(title("idle"))
		api.close()
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		base, err := rssKB(pid)
		if err != nil {
			return err
		}
		var subs []*subscriber
		for _, n := range counts {
			more, err := dialMany(n-len(subs), t.wsURLs, doc.topic, doc.readKey)
			if err != nil {
				closeAll(subs)
				return err
			}
			subs = append(subs, more...)
			time.Sleep(time.Second)
			rss, err := rssKB(pid)
			if err != nil {
				closeAll(subs)
				return err
			}
			per := float64(rss-base) / float64(n)
			r := e.rep.row("idle", strconv.Itoa(n)+" conns")
			r.set(figIdleConn, "KB", per) // KiB
			r.set(figIdle1000, "MB", per*1000/1024)
			e.log("idle run %d: %d connections: worker RSS %d → %d KiB, %.1f KiB each", run+1, n, base, rss, per)
		}
		closeAll(subs)
		if !e.o.attach {
			t.stop()
		}
	}
	return nil
}
