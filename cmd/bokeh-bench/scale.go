package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// The scale scenario: --scale-viewers browsers (100,000) on one box, over --scale-workers
// workers started by bokeh-server itself (--ws-workers), held by a load generator of several
// processes (fleet.go). In one run it measures the workers' memory per idle connection, one
// update reaching every viewer of one document, one update each to --scale-docs documents at
// once (their viewers splitting the same total), and a reconnect storm: every worker killed
// while all viewers are connected, the viewers coming back as live.js does. Then the same
// without the server in the way: raw gorilla servers (rawserver.go) holding the same
// connections, broadcasting the same frames and taking the same storm.

// Figure names of the scale scenario.
const (
	figViewers     = "viewers connected"
	figConnectS    = "time to connect them"
	figHeapConn    = "Go heap in use per connection"
	figStackConn   = "goroutine stacks per connection"
	figGorosConn   = "goroutines per connection"
	figUpd50       = "update latency p50"
	figUpd99       = "update latency p99"
	figUpdMax      = "update latency max"
	figUpdMissing  = "frames missing"
	figUpdSrvCPU   = "server CPU per update"
	figUpdCliCPU   = "load generator CPU per update"
	figStormAll    = "all back after"
	figStorm50     = "back after, p50"
	figStorm99     = "back after, p99"
	figStormNot    = "viewers not back"
	figStormHint   = "refusals with a retry hint"
	figStormFail   = "failed requests"
	figStormTries  = "attempts per viewer"
	figStormKeys   = "doc-key lookups at the API"
	figStormInfo   = "document reloads at the API"
	figStormSrv    = "server CPU busy"
	figStormCli    = "load generator CPU busy"
	figStormAPI    = "API CPU (of one CPU)"
	figStormSrvPer = "server CPU per viewer back"
	figStormListen = "listen queue overflows (kernel)"
	figStormCliPer = "load generator CPU per viewer back"
	figStormAfter  = "update after the storm: frames missing"
)

// stormSteps are the steps of a reconnection, timed when they succeed.
var stormSteps = []string{"wsurl", "websocket", "subscribe", "reload"}

func figStep(step, p string) string { return "step " + step + ", " + p }

func caseIdle(v, w int) string { return fmt.Sprintf("idle, %s viewers, W=%d", thousands(int64(v)), w) }
func caseOneDoc(v int) string  { return fmt.Sprintf("1 doc × %s viewers", thousands(int64(v))) }
func caseManyDocs(d, v int) string {
	return fmt.Sprintf("%d docs × %s viewers", d, thousands(int64(v/d)))
}
func caseStorm(v, w int) string {
	return fmt.Sprintf("storm, %s viewers, W=%d", thousands(int64(v)), w)
}
func rawCase(c string) string { return "raw " + c }

// scalePlan is how the viewers are spread over the load generator's processes.
type scalePlan struct {
	viewers, workers, docs, procs int
	perProc                       []int
}

// fileReserve is what a load-generator process keeps of its open-files limit for
// everything but its websockets (HTTP connections to the API, pipes, the runtime).
const fileReserve = 400

func (e *env) part(name string) bool { return slices.Contains(e.o.scaleParts, name) }

func (e *env) planScale() (scalePlan, error) {
	p := scalePlan{viewers: e.o.scaleViewers, workers: e.o.scaleWorkers, docs: e.o.scaleDocs}
	room := int(e.fileLimit) - fileReserve - apiConnsPerChild
	if room < 100 {
		return p, fmt.Errorf("open-files limit %d leaves no room for websockets", e.fileLimit)
	}
	p.procs = max(e.o.scaleProcs, (p.viewers+room-1)/room)
	for i := range p.procs {
		n := p.viewers / p.procs
		if i < p.viewers%p.procs {
			n++
		}
		p.perProc = append(p.perProc, n)
	}
	return p, nil
}

func (e *env) scale() error {
	plan, err := e.planScale()
	if err != nil {
		return err
	}
	e.log("scale: %d viewers over %d workers, load generator in %d processes (%d sockets each at most; open-files limit %d), source addresses %s to %s",
		plan.viewers, plan.workers, plan.procs, slices.Max(plan.perProc), e.fileLimit, sourceAddr(0), sourceAddr(plan.procs-1))
	e.noteKernel(plan)
	var errs []error
	if err := e.scaleServer(plan); err != nil {
		errs = append(errs, fmt.Errorf("server: %w", err))
	}
	e.l.stopAll()
	if e.part("raw") {
		if err := e.scaleRaw(plan); err != nil {
			errs = append(errs, fmt.Errorf("raw limit: %w", err))
		}
	}
	return errors.Join(errs...)
}

// noteKernel records the kernel settings the scenario depends on (see the README).
func (e *env) noteKernel(plan scalePlan) {
	r := e.rep.row("scale", caseIdle(plan.viewers, plan.workers))
	r.note("open-files limit %d per process (raised to the hard limit); kernel: somaxconn %s, tcp_max_syn_backlog %s, ip_local_port_range %s, tcp_syncookies %s, fs.file-max %s",
		e.fileLimit, kernelSetting("net/core/somaxconn"), kernelSetting("net/ipv4/tcp_max_syn_backlog"),
		kernelSetting("net/ipv4/ip_local_port_range"), kernelSetting("net/ipv4/tcp_syncookies"), kernelSetting("fs/file-max"))
}

// scaleDoc is one published document of the scale scenario.
type scaleDoc struct {
	*benchDoc
	bodies *smallBodies
}

func (e *env) scaleDocs(api *apiClient, n int) ([]*scaleDoc, error) {
	var out []*scaleDoc
	for range n {
		d, err := api.makeDoc(title("scale"))
		if err != nil {
			return nil, err
		}
		if st, err := api.do("POST", "bokeh/"+d.id+"/publish", nil, nil); err != nil || st != 200 {
			return nil, fmt.Errorf("publish: %d %v", st, err)
		}
		sd := &scaleDoc{benchDoc: d, bodies: newSmallBodies(d.id, e.o.frameBytes)}
		if err := d.push(sd.bodies.body(nil, 0)); err != nil {
			return nil, err
		}
		out = append(out, sd)
	}
	return out, nil
}

// viewersOf spreads proc's viewers over docs (groups in order), each over urls starting
// at a different one per process.
func viewersOf(plan scalePlan, proc int, docs []*scaleDoc, urls []string, apiRoot string) []viewerSpec {
	rot := append(slices.Clone(urls[proc%len(urls):]), urls[:proc%len(urls)]...)
	n := plan.perProc[proc]
	var out []viewerSpec
	for g, d := range docs {
		k := n / len(docs)
		if g < n%len(docs) {
			k++
		}
		out = append(out, viewerSpec{URLs: rot, Topic: d.topic, Auth: d.readKey, DocID: d.id, Group: g, N: k, APIRoot: apiRoot})
	}
	return out
}

// dialFleet opens the viewers and reports how many are connected.
func (e *env) dialFleet(fl *fleet, specOf func(i int) []viewerSpec) (int, time.Duration, error) {
	t0 := time.Now()
	rs, err := fl.all(func(i int) fleetReq { return fleetReq{Cmd: "dial", Viewers: specOf(i), Conc: 64} })
	took := time.Since(t0)
	opened, failed, first := 0, 0, ""
	for _, r := range rs {
		opened += r.Opened
		failed += r.Failed
		if first == "" {
			first = r.FirstErr
		}
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("%d viewers failed to connect, first: %s", failed, first)
	}
	return opened, took, err
}

func (e *env) scaleServer(plan scalePlan) error {
	e.log("scale: starting bokeh-server --ws-workers %d", plan.workers)
	t, err := e.l.startManaged(plan.workers)
	if err != nil {
		return err
	}
	defer t.stop()
	api := newAPIClient(t.apiRoot, 2*plan.docs+4)
	defer api.close()
	one, err := e.scaleDocs(api, 1)
	if err != nil {
		return err
	}
	var info []byte
	if st, err := api.do("GET", "bokeh/bokehinfo/"+one[0].id+"/", nil, &info); err != nil || st != 200 {
		return fmt.Errorf("bokehinfo: %d %v", st, err)
	}
	e.infoBytes = len(info) // the raw servers answer as much
	many, err := e.scaleDocs(api, plan.docs)
	if err != nil {
		return err
	}
	fl, err := e.startFleet(plan.procs)
	if err != nil {
		return err
	}
	defer fl.close()

	// Idle memory.
	time.Sleep(500 * time.Millisecond)
	workers := t.managedWorkers()
	rss0, mem0 := sumRSS(workers), workerMemory(t.wsURLs)
	e.log("scale: opening %d websockets to %d workers (pids %v)", plan.viewers, len(workers), workers)
	opened, took, err := e.dialFleet(fl, func(i int) []viewerSpec { return viewersOf(plan, i, one, t.wsURLs, t.apiRoot) })
	r := e.rep.row("scale", caseIdle(plan.viewers, plan.workers))
	r.set(figViewers, "count", float64(opened))
	r.set(figConnectS, "s", took.Seconds())
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	rss1, mem1 := sumRSS(workers), workerMemory(t.wsURLs)
	per := float64(rss1-rss0) / float64(opened)
	r.set(figIdleConn, "KB", per)
	r.set(figHeapConn, "KB", (mem1.heap-mem0.heap)/1024/float64(opened))
	r.set(figStackConn, "KB", (mem1.stacks-mem0.stacks)/1024/float64(opened))
	r.set(figGorosConn, "count", (mem1.goroutines-mem0.goroutines)/float64(opened))
	e.log("scale: %d connected in %.1f s; worker RSS %d → %d KiB, %.2f KiB per connection", opened, took.Seconds(), rss0, rss1, per)

	// One update to every viewer of one document.
	seq := uint64(1)
	servers := func() []int { return append([]int{t.api.pid()}, t.managedWorkers()...) }
	if e.part("fanout") {
		if err := e.scaleUpdates(fl, caseOneDoc(plan.viewers), one, plan.viewers, &seq, servers); err != nil {
			return err
		}
	}

	// The storm.
	for run := range e.o.storms {
		if !e.part("storm") {
			break
		}
		if err := e.serverStorm(fl, t, plan, one[0], run, &seq); err != nil {
			return err
		}
	}

	// Many documents at once.
	if !e.part("docs") {
		return nil
	}
	if _, err := fl.same(fleetReq{Cmd: "close"}); err != nil {
		return err
	}
	e.log("scale: opening %d websockets over %d documents", plan.viewers, plan.docs)
	if _, _, err := e.dialFleet(fl, func(i int) []viewerSpec { return viewersOf(plan, i, many, t.wsURLs, t.apiRoot) }); err != nil {
		return err
	}
	return e.scaleUpdates(fl, caseManyDocs(plan.docs, plan.viewers), many, plan.viewers, &seq, servers)
}

// scaleUpdates publishes --runs rounds of one update to each of docs at once, and records
// the latency from each writer's HTTP answer to every viewer's frame.
func (e *env) scaleUpdates(fl *fleet, cas string, docs []*scaleDoc, viewers int, seq *uint64, servers func() []int) error {
	r := e.rep.row("scale", cas)
	for run := range e.o.runs {
		srv0, cli0 := cpuSum(servers()), fl.cpu()
		ups := make([]updateSent, len(docs))
		var wg sync.WaitGroup
		errs := make([]error, len(docs))
		start := make(chan struct{})
		for g, d := range docs {
			ups[g] = updateSent{Seq: *seq, Group: g}
			*seq++
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := d.bodies.body(nil, ups[g].Seq)
				<-start
				errs[g] = d.post(body)
				ups[g].Done = now()
			}()
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		lat, missing, err := e.collectUpdates(fl, ups, viewers)
		if err != nil {
			return err
		}
		e.recordUpdate(r, cas, run, lat, missing, cpuSum(servers())-srv0, fl.cpu()-cli0)
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

// recordUpdate adds one update's figures to r: latencies, frames missing, and the CPU the
// servers and the load generator spent on it.
func (e *env) recordUpdate(r *row, cas string, run int, lat []int64, missing int, srvCPU, cliCPU time.Duration) {
	p := percentiles(lat, 50, 99, 100)
	r.set(figUpd50, "ms", p[0])
	r.set(figUpd99, "ms", p[1])
	r.set(figUpdMax, "ms", p[2])
	r.set(figUpdMissing, "count", float64(missing))
	r.set(figUpdSrvCPU, "ms", float64(srvCPU)/1e6)
	r.set(figUpdCliCPU, "ms", float64(cliCPU)/1e6)
	e.log("scale: %s update %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d missing", cas, run+1, p[0], p[1], p[2], missing)
}

// deliveryWait bounds how long an update's frames are waited for.
const deliveryWait = 15 * time.Second

// collectUpdates waits until every viewer has its frame (or deliveryWait passed) and
// returns the latencies and the frames missing.
func (e *env) collectUpdates(fl *fleet, ups []updateSent, viewers int) ([]int64, int, error) {
	deadline := time.Now().Add(deliveryWait)
	for time.Now().Before(deadline) {
		rs, err := fl.same(fleetReq{Cmd: "received"})
		if err != nil {
			return nil, 0, err
		}
		got := 0
		for _, r := range rs {
			got += r.Received
		}
		if got >= viewers {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rs, err := fl.same(fleetReq{Cmd: "collect", Updates: ups})
	if err != nil {
		return nil, 0, err
	}
	var lat []int64
	missing := 0
	for _, r := range rs {
		lat = append(lat, r.Lat...)
		missing += r.Missing
	}
	return lat, missing, nil
}

// liveJS is live.js's reconnection behaviour (api/web/static/live.js).
func (e *env) liveJS() stormModel {
	return stormModel{First: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: e.o.stormJitter,
		ResyncSpread: 250 * time.Millisecond, ConfirmWait: 3 * time.Second}
}

// stormResult is what one storm measured.
type stormResult struct {
	viewers  int
	allBack  time.Duration
	back     []int64 // ns after the kill
	notBack  int
	attempts int
	hinted   map[string]int
	failed   map[string]int
	steps    map[string][]int64
	cliCPU   time.Duration
}

// runStorm arms the viewers' reconnection, calls kill, and waits until every viewer is back
// or --storm-wait has passed.
func (e *env) runStorm(fl *fleet, viewers int, kill func() error) (stormResult, error) {
	res := stormResult{viewers: viewers, hinted: map[string]int{}, failed: map[string]int{}, steps: map[string][]int64{}}
	if _, err := fl.same(fleetReq{Cmd: "storm", Storm: ptr(e.liveJS())}); err != nil {
		return res, err
	}
	cli0 := fl.cpu()
	t0 := now()
	if err := kill(); err != nil {
		return res, err
	}
	deadline := time.Now().Add(e.o.stormWait)
	for {
		time.Sleep(500 * time.Millisecond)
		rs, err := fl.same(fleetReq{Cmd: "stormstat"})
		if err != nil {
			return res, err
		}
		closed, notBack := 0, 0
		for _, r := range rs {
			closed += r.Storm.Closed
			notBack += r.Storm.NotBack
		}
		if (closed >= viewers && notBack == 0) || time.Now().After(deadline) {
			res.notBack = notBack + max(viewers-closed, 0)
			break
		}
	}
	res.cliCPU = fl.cpu() - cli0
	last, err := fl.same(fleetReq{Cmd: "stormstat", Full: true})
	if err != nil {
		return res, err
	}
	if _, err := fl.same(fleetReq{Cmd: "stopstorm"}); err != nil {
		return res, err
	}
	for _, r := range last {
		for _, b := range r.Storm.Back {
			res.back = append(res.back, b-t0)
		}
		res.attempts += r.Storm.Attempts
		for k, v := range r.Storm.Hinted {
			res.hinted[k] += v
		}
		for k, v := range r.Storm.Failed {
			res.failed[k] += v
		}
		for k, v := range r.Storm.Steps {
			res.steps[k] = append(res.steps[k], v...)
		}
	}
	if len(res.back) > 0 {
		res.allBack = time.Duration(slices.Max(res.back))
	}
	return res, nil
}

func ptr[T any](v T) *T { return &v }

// perViewer records the CPU the servers and the load generator spent per viewer brought back.
func (res *stormResult) perViewer(r *row, server time.Duration) {
	if n := len(res.back); n > 0 {
		r.set(figStormSrvPer, "µs", float64(server)/1e3/float64(n))
		r.set(figStormCliPer, "µs", float64(res.cliCPU)/1e3/float64(n))
	}
}

// record adds one storm's figures to r.
func (res *stormResult) record(r *row) {
	p := percentiles(slices.Clone(res.back), 50, 99)
	r.set(figStormAll, "s", res.allBack.Seconds())
	r.set(figStorm50, "s", p[0]/1e3)
	r.set(figStorm99, "s", p[1]/1e3)
	r.set(figStormNot, "count", float64(res.notBack))
	hinted, failed := 0, 0
	for k, v := range res.hinted {
		hinted += v
		r.note("refused with a retry hint: %s", k)
	}
	for k, v := range res.failed {
		failed += v
		r.note("failed: %s (%d)", k, v)
	}
	for _, step := range stormSteps {
		if ds := res.steps[step]; len(ds) > 0 {
			p := percentiles(ds, 50, 99)
			r.set(figStep(step, "p50"), "s", p[0]/1e3)
			r.set(figStep(step, "p99"), "s", p[1]/1e3)
		}
	}
	r.set(figStormHint, "count", float64(hinted))
	r.set(figStormFail, "count", float64(failed))
	r.set(figStormTries, "", float64(res.attempts)/float64(max(res.viewers, 1)))
}

func (e *env) serverStorm(fl *fleet, t *topology, plan scalePlan, doc *scaleDoc, run int, seq *uint64) error {
	cas := caseStorm(plan.viewers, plan.workers)
	r := e.rep.row("scale", cas)
	m0, err := apiRequests(t.apiRoot)
	if err != nil {
		return err
	}
	api0, err := cpuTime(t.api.pid())
	if err != nil {
		return err
	}
	old := t.managedWorkers()
	overflows0 := listenOverflows()
	e.log("scale: storm %d: killing workers %v", run+1, old)
	res, err := e.runStorm(fl, plan.viewers, func() error {
		for _, pid := range old {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				return fmt.Errorf("kill worker %d: %w", pid, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	api1, _ := cpuTime(t.api.pid())
	srvCPU := api1 - api0
	apiCPU := srvCPU
	for _, pid := range t.managedWorkers() {
		if !slices.Contains(old, pid) {
			if d, err := cpuTime(pid); err == nil {
				srvCPU += d // all of a new worker's CPU time is the storm's
			}
		}
	}
	m1, err := apiRequests(t.apiRoot)
	if err != nil {
		return err
	}
	res.record(r)
	wall := res.allBack
	if wall <= 0 {
		wall = e.o.stormWait
	}
	r.set(figStormSrv, "%", 100*float64(srvCPU)/float64(wall)/float64(len(e.split.Server)))
	r.set(figStormCli, "%", 100*float64(res.cliCPU)/float64(wall)/float64(len(e.split.Client)))
	r.set(figStormAPI, "%", 100*float64(apiCPU)/float64(wall))
	r.set(figStormListen, "count", float64(listenOverflows()-overflows0))
	res.perViewer(r, srvCPU)
	r.set(figStormKeys, "count", m1.sum(routeDocKeys, "")-m0.sum(routeDocKeys, ""))
	r.set(figStormInfo, "count", m1.sum(routeDocInfo, "200")-m0.sum(routeDocInfo, "200"))
	for _, code := range []string{"429", "503", "500"} {
		for _, route := range []string{routeWSURL, routeDocInfo} {
			if n := m1.sum(route, code) - m0.sum(route, code); n > 0 {
				r.note("API answered %s %s %.0f times", route, code, n)
			}
		}
	}
	e.log("scale: storm %d: all back after %.2f s (%d not back), %d attempts, hinted %v, failed %v", run+1,
		res.allBack.Seconds(), res.notBack, res.attempts, res.hinted, res.failed)
	// Everyone resubscribed: one more update reaches them all.
	time.Sleep(time.Second)
	up := updateSent{Seq: *seq, Group: 0}
	*seq++
	if err := doc.post(doc.bodies.body(nil, up.Seq)); err != nil {
		return err
	}
	up.Done = now()
	_, missing, err := e.collectUpdates(fl, []updateSent{up}, plan.viewers)
	if err != nil {
		return err
	}
	r.set(figStormAfter, "count", float64(missing))
	return nil
}

// API request counts, from its /metrics.
const (
	routeDocKeys = "/bokeh/internal/dockeys/:docid"
	routeDocInfo = "/bokeh/bokehinfo/:docid/"
	routeWSURL   = "/bokeh/wsurl/"
)

// requestCounts are bokeh_http_requests_total by route and code.
type requestCounts map[[2]string]float64

func (m requestCounts) sum(route, code string) float64 {
	s := 0.0
	for k, v := range m {
		if k[0] == route && (code == "" || k[1] == code) {
			s += v
		}
	}
	return s
}

func apiRequests(apiRoot string) (requestCounts, error) {
	lines, err := metricLines(apiRoot + "metrics")
	if err != nil {
		return nil, err
	}
	out := requestCounts{}
	for _, l := range lines {
		if l.name != "bokeh_http_requests_total" {
			continue
		}
		out[[2]string{l.labels["route"], l.labels["code"]}] += l.value
	}
	return out, nil
}

// memStats are a worker's Go memory figures, from its /metrics.
type memStats struct{ heap, stacks, goroutines float64 }

func workerMemory(wsURLs []string) memStats {
	var m memStats
	for _, u := range wsURLs {
		lines, err := metricLines(strings.TrimSuffix(statsURLOf(u), "stats") + "metrics")
		if err != nil {
			continue
		}
		for _, l := range lines {
			switch l.name {
			case "go_memstats_heap_inuse_bytes":
				m.heap += l.value
			case "go_memstats_stack_inuse_bytes":
				m.stacks += l.value
			case "go_goroutines":
				m.goroutines += l.value
			}
		}
	}
	return m
}

func sumRSS(pids []int) int64 {
	var s int64
	for _, p := range pids {
		if v, err := rssKB(p); err == nil {
			s += v
		}
	}
	return s
}

// rawServer is one raw limit process of the scale scenario.
type rawServer struct {
	c       *child
	wsURL   string
	httpURL string
	ctlPort int
}

func (e *env) startRaw(n int) ([]*rawServer, error) {
	var out []*rawServer
	for range n {
		c, err := e.startChild("internal-broadcast", "--frame-bytes", strconv.Itoa(e.o.frameBytes),
			"--docid", uuid.NewString(), "--info-bytes", strconv.Itoa(e.infoBytes))
		if err != nil {
			return out, err
		}
		rs := &rawServer{c: c}
		out = append(out, rs)
		line, err := readLine(c.stdout, 10*time.Second)
		if err != nil {
			return out, err
		}
		var wsPort int
		if _, err := fmt.Sscanf(line, "listening %d %d", &wsPort, &rs.ctlPort); err != nil {
			return out, fmt.Errorf("internal-broadcast said %q", line)
		}
		rs.wsURL = "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/ws"
		rs.httpURL = "http://127.0.0.1:" + strconv.Itoa(wsPort) + "/"
	}
	return out, nil
}

// rawCommand sends line to every raw server at once and returns when all have answered.
func rawCommand(raws []*rawServer, line string) error {
	errs := make([]error, len(raws))
	var wg sync.WaitGroup
	for i, rs := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialCtl(rs.ctlPort)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.close()
			errs[i] = c.command(line)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *env) scaleRaw(plan scalePlan) error {
	e.log("scale: raw limit: %d gorilla servers", plan.workers)
	raws, err := e.startRaw(plan.workers)
	defer func() {
		for _, rs := range raws {
			rs.c.stop()
		}
	}()
	if err != nil {
		return err
	}
	var peers []string
	for _, rs := range raws {
		peers = append(peers, rs.wsURL)
	}
	if err := rawCommand(raws[:1], "peers "+strings.Join(peers, ",")); err != nil {
		return err
	}
	fl, err := e.startFleet(plan.procs)
	if err != nil {
		return err
	}
	defer fl.close()
	var pids []int
	for _, rs := range raws {
		pids = append(pids, rs.c.cmd.Process.Pid)
	}
	time.Sleep(300 * time.Millisecond)
	rss0 := sumRSS(pids)
	// Viewers in plan.docs groups: the one-document case broadcasts to all of them.
	opened, took, err := e.dialFleet(fl, func(i int) []viewerSpec {
		var docs []*scaleDoc
		for g := range plan.docs {
			docs = append(docs, &scaleDoc{benchDoc: &benchDoc{id: "raw", topic: "bokehplot:raw-" + strconv.Itoa(g)}})
		}
		specs := viewersOf(plan, i, docs, peers, raws[0].httpURL)
		for g := range specs {
			specs[g].URLs = slices.Clone(specs[g].URLs)
			for k := range specs[g].URLs {
				specs[g].URLs[k] += "?g=" + strconv.Itoa(g)
			}
		}
		return specs
	})
	r := e.rep.row("limits", rawCase(caseIdle(plan.viewers, plan.workers)))
	r.set(figViewers, "count", float64(opened))
	r.set(figConnectS, "s", took.Seconds())
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	rss1 := sumRSS(pids)
	r.set(figIdleConn, "KB", float64(rss1-rss0)/float64(opened))
	e.log("scale: raw: %d connected in %.1f s, %.2f KiB per connection", opened, took.Seconds(), float64(rss1-rss0)/float64(opened))

	seq := uint64(1)
	cases := []struct {
		name   string
		groups []int
	}{{caseOneDoc(plan.viewers), []int{-1}}, {caseManyDocs(plan.docs, plan.viewers), nil}}
	for g := range plan.docs {
		cases[1].groups = append(cases[1].groups, g)
	}
	for _, c := range cases {
		r := e.rep.row("limits", rawCase(c.name))
		for run := range e.o.runs {
			srv0, cli0 := cpuSum(pids), fl.cpu()
			ups := make([]updateSent, len(c.groups))
			errs := make([]error, len(c.groups))
			var wg sync.WaitGroup
			for i, g := range c.groups {
				ups[i] = updateSent{Seq: seq, Group: g}
				seq++
				wg.Add(1)
				go func() {
					defer wg.Done()
					line := strconv.FormatUint(ups[i].Seq, 10)
					if g >= 0 {
						line += " " + strconv.Itoa(g)
					}
					errs[i] = rawCommand(raws, line)
					ups[i].Done = now()
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
			lat, missing, err := e.collectUpdates(fl, ups, opened)
			if err != nil {
				return err
			}
			e.recordUpdate(r, "raw "+c.name, run, lat, missing, cpuSum(pids)-srv0, fl.cpu()-cli0)
			time.Sleep(500 * time.Millisecond)
		}
	}

	for run := range e.o.storms {
		r := e.rep.row("limits", rawCase(caseStorm(plan.viewers, plan.workers)))
		srv0 := cpuSum(pids)
		overflows0 := listenOverflows()
		res, err := e.runStorm(fl, opened, func() error { return rawCommand(raws, "drop") })
		if err != nil {
			return err
		}
		res.record(r)
		wall := res.allBack
		if wall <= 0 {
			wall = e.o.stormWait
		}
		r.set(figStormSrv, "%", 100*float64(cpuSum(pids)-srv0)/float64(wall)/float64(len(e.split.Server)))
		res.perViewer(r, cpuSum(pids)-srv0)
		r.set(figStormListen, "count", float64(listenOverflows()-overflows0))
		r.set(figStormCli, "%", 100*float64(res.cliCPU)/float64(wall)/float64(len(e.split.Client)))
		e.log("scale: raw storm %d: all back after %.2f s (%d not back), %d attempts, failed %v", run+1,
			res.allBack.Seconds(), res.notBack, res.attempts, res.failed)
		time.Sleep(time.Second)
	}
	return nil
}

// listenOverflows is the kernel's count of connections dropped because a listen queue was
// full (TcpExt ListenOverflows): each is retried by the client's kernel a second or more
// later. It counts for the whole machine.
func listenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for k, n := range names {
			if n == "ListenOverflows" {
				v, _ := strconv.ParseInt(values[k], 10, 64)
				return v
			}
		}
	}
	return 0
}
