// Command bokeh-bench measures the plot server end to end: it starts bokeh-server and
// ws-worker processes on free loopback ports (or attaches to running ones), drives them like
// Python scripts and browsers do, and prints a table (or JSON) of update rates, push
// latencies, fan-out throughput, idle memory, and the same figures without the server in
// the way (a raw gorilla broadcast, raw ZeroMQ), each as a ratio to that limit.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// options are the command-line settings.
type options struct {
	scenarios   []string
	runs        int
	duration    time.Duration
	jsonOut     bool
	jsonFile    string
	attach      bool
	apiURL      string
	wsURLs      []string
	workerPIDs  []int
	binDir      string
	backends    []string
	subscribers []int
	workers     []int
	idleConns   []int
	writers     int
	points      int
	frameBytes  int
	fanoutRate  float64
	updateRate  float64
	window      int
	maxMsgs     int
	serverCPUs  string
	clientCPUs  string
	updWorkCPUs string
	keepLogs    bool
	profileDir  string
	cpuProfile  string
	quiet       bool

	scaleViewers int
	scaleWorkers int
	scaleDocs    int
	scaleProcs   int
	storms       int
	stormWait    time.Duration
	stormJitter  float64
	scaleParts   []string
}

var scenarioNames = []string{"update", "fanout", "idle", "limits"}

// scaleParts are the parts of the scale scenario (--scale-parts).
var scaleParts = []string{"fanout", "storm", "docs", "raw"}

func subset(a, of []string) bool {
	for _, x := range a {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

// scaleScenario is run only when named (make bench-scale): it takes minutes.
const scaleScenario = "scale"

const usageHead = `Usage: bokeh-bench [flags] [scenario ...]

Benchmarks bokeh-server end to end. Scenarios (default: all, in this order):

  update   a 1000-point ColumnDataSource bulkupsert loop (the Python client's streaming
           store_objects) with one websocket subscriber, per backend (memory, shelve,
           redis; memory+curve is memory with ZeroMQ CURVE between API and worker, the
           cost of encryption): updates/s with 1 writer and with --writers concurrent
           writers, and
           HTTP-done→websocket-receive latency p50/p99/p999 of the 1-writer loop (which
           runs the API flat out) and of a stream paced at --update-rate (negative when
           the frame arrives before the writer has read its answer: the API publishes
           before it answers)
  fanout   one document, S subscribers (--subscribers) spread over W workers (--workers),
           1 KB updates at the maximum rate (a bounded window of messages in flight) and at
           a fixed rate (--fanout-rate deliveries/s): deliveries/s, publish (HTTP done) →
           receive latency at each subscriber, drops
  idle     worker RSS growth per idle websocket (subscribed to a topic), for each
           --idle-conns count, in a fresh worker per run
  limits   the same figures without the server: a raw gorilla PreparedMessage broadcast to
           the same S connections (same client reader), its RSS per idle connection, and raw
           ZeroMQ PUB→SUB over TCP loopback for the same frames (throughput, and latency one
           message at a time); every figure above is printed as a ratio to its limit

Run only when named (make bench-scale, several minutes):

  scale    --scale-viewers browsers (100,000) subscribed to one published document over
           --scale-workers workers (6) that bokeh-server starts itself (--ws-workers): worker
           memory per idle connection; one 1 KB update reaching them all (latency from the
           writer's HTTP answer to each frame); one update each to --scale-docs documents
           at once, their viewers splitting the same total; and --storms reconnect storms:
           every worker killed (SIGKILL) while all are connected, bokeh-server restarting
           them, each viewer coming back as live.js does (backoff 250 ms doubling to 10 s,
           plus a random --storm-jitter part of it; bokeh/wsurl/, websocket, resubscribe,
           then bokeh/bokehinfo/<docid>/), until all are back or --storm-wait. Then the
           same against raw gorilla servers in as many processes holding the same
           connections (the limit: a raw broadcast, a raw accept loop for the storm).
           The load generator runs in several processes (each within the open-files
           limit, which this program raises to the hard limit), each binding its sockets
           to a loopback source address of its own (127.0.0.2, ...) so that no address
           runs out of ephemeral ports. Kernel settings: see the README (Performance).

Every case runs --runs times; the table shows the median [min – max] of the runs. Every
loop is bounded by --duration and --max-msgs. Servers and load generator are pinned to
different CPUs (first half / second half by default; --server-cpus, --client-cpus,
"none" to share all), except that the update scenario's worker runs beside the load
generator (--update-worker-cpus), so that its API has a CPU of its own and no CPU idles;
the split is printed. Programs come from --bin-dir (default: the
directory of this program, i.e. bin/), redis-server from $PATH (started by bokeh-server
--start-redis, as in production).

With --attach, --api-url and --ws-url name running servers instead (single-user mode, the
default defaultuser/nokey credentials); the backend is whatever that server uses, idle
needs --worker-pid (and measures growth on top of whatever earlier scenarios left in that
worker), and server CPU use is not reported.

Flags:
`

func parseFlags(args []string, stdout io.Writer) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("bokeh-bench", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, usageHead, fs.FlagUsages()) }
	fs.IntVar(&o.runs, "runs", 3, "repetitions of every case; the median is reported")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of one measured phase")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the JSON report to this file")
	fs.BoolVar(&o.attach, "attach", false, "use running servers (--api-url, --ws-url) instead of starting them")
	fs.StringVar(&o.apiURL, "api-url", "http://127.0.0.1:5006/", "with --attach: the API root URL")
	fs.StringSliceVar(&o.wsURLs, "ws-url", []string{"ws://127.0.0.1:5007/bokeh/sub/"}, "with --attach: websocket URL of each worker (repeat or comma-separate)")
	fs.IntSliceVar(&o.workerPIDs, "worker-pid", nil, "with --attach: process id of each worker, for the idle scenario")
	fs.StringVar(&o.binDir, "bin-dir", "", "directory holding bokeh-server and ws-worker (default: next to this program)")
	fs.StringSliceVar(&o.backends, "backends", []string{"memory", "memory+curve", "shelve", "redis"}, "backends of the update scenario; +curve runs ZeroMQ with CURVE (keys made here)")
	fs.IntSliceVar(&o.subscribers, "subscribers", []int{100, 1000, 5000}, "subscriber counts S of the fanout and limits scenarios")
	fs.IntSliceVar(&o.workers, "workers", []int{1, 2}, "worker counts W of the fanout scenario")
	fs.IntSliceVar(&o.idleConns, "idle-conns", []int{1000, 5000}, "idle websocket counts of the idle scenario (cumulative, in one worker)")
	fs.IntVar(&o.writers, "writers", 4, "concurrent writers of the update scenario's second phase")
	fs.IntVar(&o.points, "points", 1000, "points of the update scenario's ColumnDataSource")
	fs.IntVar(&o.frameBytes, "frame-bytes", 1024, "websocket frame size of the fanout updates")
	fs.Float64Var(&o.fanoutRate, "fanout-rate", 150000, "deliveries/s of the fanout fixed-rate phase (half the 300,000 target)")
	fs.Float64Var(&o.updateRate, "update-rate", 1000, "updates/s of the update scenario's paced phase, which measures push latency below saturation")
	fs.IntVar(&o.window, "window", 16, "messages in flight (not yet at every subscriber) in the fanout maximum-rate phase")
	fs.IntVar(&o.maxMsgs, "max-msgs", 200000, "bound on the messages one phase publishes")
	fs.StringVar(&o.serverCPUs, "server-cpus", "", `CPUs of the servers, e.g. "0" or "0-1" (default: first half; "none": no pinning)`)
	fs.StringVar(&o.clientCPUs, "client-cpus", "", `CPUs of the load generator (default: second half; "none": no pinning)`)
	fs.StringVar(&o.updWorkCPUs, "update-worker-cpus", "client", `CPUs of the update scenario's worker: "client" (beside the load generator), "server" (beside the API), or a list`)
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the servers' logs and data (their directory is printed)")
	fs.StringVar(&o.profileDir, "profile-dir", "", "write a CPU profile of every started server (and load-generator process of scale) there (<name>.pprof, via $BOKEH_CPUPROFILE)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this program (the load generator) to this file")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines on stderr")
	fs.IntVar(&o.scaleViewers, "scale-viewers", 100000, "scale: websocket viewers in all")
	fs.IntVar(&o.scaleWorkers, "scale-workers", 6, "scale: workers (each needs an open-files limit above its share of the viewers)")
	fs.IntVar(&o.scaleDocs, "scale-docs", 10, "scale: documents updated at once in the many-documents case")
	fs.IntVar(&o.scaleProcs, "scale-procs", 8, "scale: load-generator processes at least (more if the open-files limit needs them)")
	fs.IntVar(&o.storms, "storms", 1, "scale: reconnect storms (each up to --storm-wait)")
	fs.DurationVar(&o.stormWait, "storm-wait", 90*time.Second, "scale: how long a storm waits for every viewer to be back (the target is 30 s)")
	fs.StringSliceVar(&o.scaleParts, "scale-parts", scaleParts, "scale: the parts to run (the viewers always connect, and idle memory is measured)")
	fs.Float64Var(&o.stormJitter, "storm-jitter", 0.3, "scale: random part added to each reconnection delay, as a fraction of it (live.js: 0.3)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.scenarios = fs.Args()
	if len(o.scenarios) == 0 || slices.Contains(o.scenarios, "all") {
		o.scenarios = scenarioNames
	}
	for _, s := range o.scenarios {
		if !slices.Contains(scenarioNames, s) && s != scaleScenario {
			return nil, fmt.Errorf("unknown scenario %q (want %s, all or %s)", s, strings.Join(scenarioNames, ", "), scaleScenario)
		}
	}
	switch {
	case o.scaleViewers < 1 || o.scaleViewers > 1_000_000 || o.scaleWorkers < 1 || o.scaleWorkers > 64:
		return nil, errors.New("--scale-viewers must be 1 to 1,000,000, --scale-workers 1 to 64")
	case o.scaleDocs < 1 || o.scaleDocs > o.scaleViewers || o.scaleProcs < 1 || o.scaleProcs > 200:
		return nil, errors.New("--scale-docs must be 1 to --scale-viewers, --scale-procs 1 to 200")
	case !subset(o.scaleParts, scaleParts):
		return nil, fmt.Errorf("--scale-parts: want some of %s", strings.Join(scaleParts, ","))
	case o.storms < 0 || o.storms > 20 || o.stormWait < time.Second || o.stormJitter < 0 || o.stormJitter > 10:
		return nil, errors.New("--storms must be 0 to 20, --storm-wait at least 1s, --storm-jitter 0 to 10")
	}
	switch {
	case o.runs < 1 || o.runs > 100:
		return nil, errors.New("--runs must be 1 to 100")
	case o.duration < 100*time.Millisecond || o.duration > 10*time.Minute:
		return nil, errors.New("--duration must be 100ms to 10m")
	case o.writers < 1 || o.writers > 256, o.points < 1 || o.points > 1_000_000:
		return nil, errors.New("--writers must be 1 to 256, --points 1 to 1,000,000")
	case o.frameBytes < 256 || o.frameBytes > 1<<20:
		return nil, errors.New("--frame-bytes must be 256 to 1 MiB")
	case o.window < 1 || o.maxMsgs < 1 || o.maxMsgs > 10_000_000:
		return nil, errors.New("--window must be positive, --max-msgs 1 to 10,000,000")
	}
	for _, n := range append(append(slices.Clone(o.subscribers), o.workers...), o.idleConns...) {
		if n < 1 || n > 20000 {
			return nil, errors.New("--subscribers, --workers and --idle-conns must be 1 to 20,000")
		}
	}
	for _, b := range o.backends {
		if b, _ := strings.CutSuffix(b, curveSuffix); b != "memory" && b != "shelve" && b != "redis" {
			return nil, fmt.Errorf("--backends: unknown backend %q", b)
		}
	}
	if o.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.binDir = filepath.Dir(exe)
	}
	return o, nil
}

// env is what the scenarios share.
type env struct {
	o         *options
	fileLimit uint64 // open-files limit of this process and its children
	infoBytes int    // size of a scale document's bokehinfo answer
	split     cpuSplit
	l         *launcher
	rep       *report
	log       func(format string, args ...any)
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "internal-") {
		os.Exit(runChild(os.Args[1], os.Args[2:]))
	}
	o, err := parseFlags(os.Args[1:], os.Stdout)
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bokeh-bench:", err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o *options) int {
	started := time.Now()
	split, err := decideSplit(o.serverCPUs, o.clientCPUs, o.updWorkCPUs, o.attach)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bokeh-bench:", err)
		return 2
	}
	if split.Pinned {
		if err := pinSelf(split.Client); err != nil {
			fmt.Fprintln(os.Stderr, "bokeh-bench: pinning failed, running unpinned:", err)
			split.Pinned = false
			split.Note = "not pinned (" + err.Error() + ")"
		}
	}
	// Fewer collections on the load generator: it keeps every sample of a phase.
	debug.SetGCPercent(400)
	if !o.attach {
		for _, b := range []string{"bokeh-server", "ws-worker"} {
			if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
				fmt.Fprintf(os.Stderr, "bokeh-bench: %s not found in %s (run make build, or pass --bin-dir)\n", b, o.binDir)
				return 2
			}
		}
	}
	if o.profileDir != "" {
		if profileDir, err = filepath.Abs(o.profileDir); err != nil || os.MkdirAll(profileDir, 0o755) != nil {
			fmt.Fprintln(os.Stderr, "bokeh-bench: --profile-dir:", err)
			return 2
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bokeh-bench: --cpuprofile:", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	l, err := newLauncher(o.binDir, split)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bokeh-bench:", err)
		return 1
	}
	rep := &report{Command: "bokeh-bench " + strings.Join(os.Args[1:], " "), Started: started.Format(time.RFC3339),
		GoVersion: runtime.Version(), CPUModel: cpuModel(), CPU: split, Runs: o.runs, Phase: o.duration.String(),
		LoadAvg:  loadAvg(),
		Attached: o.attach, Params: map[string]any{
			"backends": o.backends, "subscribers": o.subscribers, "workers": o.workers, "idle_conns": o.idleConns,
			"writers": o.writers, "points": o.points, "frame_bytes": o.frameBytes, "fanout_rate": o.fanoutRate, "update_rate": o.updateRate,
			"window": o.window, "max_msgs": o.maxMsgs, "scenarios": o.scenarios,
			"scale_viewers": o.scaleViewers, "scale_workers": o.scaleWorkers, "scale_docs": o.scaleDocs,
			"storms": o.storms, "storm_jitter": o.stormJitter}}
	e := &env{o: o, split: split, l: l, rep: rep, log: func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
		}
	}}
	if e.fileLimit, err = raiseFileLimit(); err != nil {
		e.log("cannot raise the open-files limit: %v (limit %d)", err, e.fileLimit)
	}
	e.infoBytes = 4096
	e.log("%s", split.Note)
	rep.SpeedStart = speedCheck()
	e.log("speed check: one 61 KB update validated in %.1f µs", rep.SpeedStart)
	if la := loadAvg(); la > 0.5 {
		e.log("warning: load average %.2f before starting: other programs compete for the CPUs", la)
	}
	if o.keepLogs {
		e.log("server logs and data in %s", l.dir)
	}
	for _, s := range o.scenarios {
		var err error
		switch s {
		case "update":
			err = e.update()
		case "fanout":
			err = e.fanout()
		case "idle":
			err = e.idle()
		case "limits":
			err = e.limits()
		case scaleScenario:
			err = e.scale()
		}
		if err != nil {
			rep.Errors = append(rep.Errors, s+": "+err.Error())
			e.log("%s failed: %v", s, err)
		}
		l.stopAll()
	}
	l.close(o.keepLogs)
	rep.SpeedEnd = speedCheck()
	e.applyLimits()
	if slices.Contains(o.scenarios, scaleScenario) {
		e.applyScaleLimits()
		e.checkScaleTargets()
	} else {
		e.checkTargets()
	}
	rep.Elapsed = time.Since(started).Round(100 * time.Millisecond).String()
	if o.jsonFile != "" {
		f, err := os.Create(o.jsonFile)
		if err == nil {
			err = rep.printJSON(f)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bokeh-bench: --json-file:", err)
		}
	}
	if o.jsonOut {
		rep.printJSON(os.Stdout)
	} else {
		rep.printTable(os.Stdout)
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the one-minute load average (0 when unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
