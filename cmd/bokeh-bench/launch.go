package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Limits of process handling.
const (
	readyWait = 30 * time.Second
	// stopWait is long enough for bokeh-server to drain workers of 100,000 websockets.
	stopWait = 30 * time.Second
)

// benchSecret is the secret shared by the API and the workers this command starts; it
// reaches them through the environment.
const benchSecret = "bokeh-bench-secret"

// curveSuffix on a backend name makes its topology use ZeroMQ CURVE.
const curveSuffix = "+curve"

// proc is one started program; its output goes to a log file in the run's directory.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// launcher starts the programs of one benchmark run and stops them all at the end.
type launcher struct {
	binDir string
	dir    string // logs and data
	split  cpuSplit
	mu     sync.Mutex
	procs  []*proc
	ports  map[int]bool
}

func newLauncher(binDir string, split cpuSplit) (*launcher, error) {
	dir, err := os.MkdirTemp("", "bokeh-bench-")
	if err != nil {
		return nil, err
	}
	return &launcher{binDir: binDir, dir: dir, split: split, ports: map[int]bool{}}, nil
}

func (l *launcher) bin(name string) string { return filepath.Join(l.binDir, name) }

// start runs bin pinned to the server CPUs.
func (l *launcher) start(name, bin string, args []string, env []string) (*proc, error) {
	return l.startOn(l.split.Server, name, bin, args, env)
}

// startOn runs bin pinned to cpus (when the split is pinned).
func (l *launcher) startOn(cpus []int, name, bin string, args []string, env []string) (*proc, error) {
	logPath := filepath.Join(l.dir, strings.NewReplacer(" ", "_", ":", "_", "/", "_").Replace(name)+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Children must not outlive this command, even on kill -9.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var pinTo, restore []int
	if l.split.Pinned {
		pinTo, restore = cpus, l.split.Client
	}
	if err := startPinned(cmd.Start, pinTo, restore); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends p with SIGTERM, then SIGKILL after stopWait.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopWait):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stopAll stops every program started, newest first (workers before the API).
func (l *launcher) stopAll() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(procs) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop() }(procs[i])
	}
	wg.Wait()
}

// close stops everything and removes the run directory unless keep.
func (l *launcher) close(keep bool) {
	l.stopAll()
	if !keep {
		os.RemoveAll(l.dir)
	}
}

// freePort returns a free loopback port not handed out before by this launcher.
func (l *launcher) freePort() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !l.ports[port] {
			l.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// waitHTTP polls url until it answers 200.
func waitHTTP(p *proc, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyWait)
	last := "no answer"
	for time.Now().Before(deadline) {
		if p != nil && !p.running() {
			return fmt.Errorf("%s exited (%v) before %s answered:\n%s", p.name, p.waitErr, url, p.logTail(30))
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "status " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v (%s)", url, readyWait, last)
}

// topology is one API process and its workers, started here or attached to.
type topology struct {
	backend   string
	curveEnv  []string // the workers' CURVE keys, when the topology uses CURVE
	apiRoot   string   // http://127.0.0.1:port/
	wsURLs    []string // ws://127.0.0.1:port/bokeh/sub/ per worker
	statsURLs []string // http://127.0.0.1:port/stats per worker ("" when unknown)
	api       *proc    // nil when attached
	workers   []*proc
	workerPID []int // 0 when unknown
	zmqAddr   string
}

// startTopology starts bokeh-server with backend and no workers of its own, then the
// workers, all pinned to the server CPUs. redis is the server's managed redis-server, so
// it runs as in production (loopback, AOF every second) and inherits the pinning.
func (l *launcher) startTopology(name string, workers int, workerCPUs []int, extraWorkerArgs ...string) (*topology, error) {
	backend, curve := strings.CutSuffix(name, curveSuffix)
	apiPort, err := l.freePort()
	if err != nil {
		return nil, err
	}
	zmqPort, err := l.freePort()
	if err != nil {
		return nil, err
	}
	t := &topology{backend: name, apiRoot: "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/",
		zmqAddr: "tcp://127.0.0.1:" + strconv.Itoa(zmqPort)}
	dataDir, err := os.MkdirTemp(l.dir, "data-"+backend+"-")
	if err != nil {
		return nil, err
	}
	args := []string{"--ip", "127.0.0.1", "--port", strconv.Itoa(apiPort), "--backend", backend,
		"--data-dir", dataDir, "--zmqaddr", t.zmqAddr, "--no-ws-start"}
	env := append(profileEnv("bokeh-server-"+strconv.Itoa(apiPort)), "BOKEH_SECRET_KEY="+benchSecret)
	if curve {
		allow, serverEnv, workerEnv, err := curveKeys(dataDir)
		if err != nil {
			return nil, err
		}
		args = append(args, "--zmq-curve-allow", allow)
		env, t.curveEnv = append(env, serverEnv...), workerEnv
	}
	if backend == "redis" {
		redisPort, err := l.freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--redis-port", strconv.Itoa(redisPort), "--start-redis")
	}
	if t.api, err = l.start(fmt.Sprintf("bokeh-server-%s-%d", name, apiPort), l.bin("bokeh-server"), args, env); err != nil {
		return nil, err
	}
	if err := waitHTTP(t.api, t.apiRoot+"bokeh/ping"); err != nil {
		return nil, err
	}
	for range workers {
		if err := l.addWorker(t, workerCPUs, extraWorkerArgs...); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addWorker starts one more ws-worker for t.
func (l *launcher) addWorker(t *topology, cpus []int, extra ...string) error {
	port, err := l.freePort()
	if err != nil {
		return err
	}
	base := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--ip", "127.0.0.1", "--ws-port", strconv.Itoa(port), "--zmqaddr", t.zmqAddr,
		"--api-url", t.apiRoot, "--drain-timeout", "0"}, extra...)
	name := "ws-worker-" + strconv.Itoa(port)
	env := append(append(profileEnv(name), "BOKEH_SECRET_KEY="+benchSecret), t.curveEnv...)
	p, err := l.startOn(cpus, name, l.bin("ws-worker"), args, env)
	if err != nil {
		return err
	}
	if err := waitHTTP(p, "http://"+base+"/healthz"); err != nil {
		return err
	}
	t.workers = append(t.workers, p)
	t.workerPID = append(t.workerPID, p.pid())
	t.wsURLs = append(t.wsURLs, "ws://"+base+"/bokeh/sub/")
	t.statsURLs = append(t.statsURLs, "http://"+base+"/stats")
	return nil
}

// stop ends the topology's processes (not an attached one).
func (t *topology) stop() {
	for i := len(t.workers) - 1; i >= 0; i-- {
		t.workers[i].stop()
	}
	if t.api != nil {
		t.api.stop()
	}
}

// attachedTopology describes servers started by someone else.
func attachedTopology(apiURL string, wsURLs []string, pids []int) *topology {
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	t := &topology{backend: "attached", apiRoot: apiURL}
	for i, u := range wsURLs {
		t.wsURLs = append(t.wsURLs, u)
		t.statsURLs = append(t.statsURLs, statsURLOf(u))
		pid := 0
		if i < len(pids) {
			pid = pids[i]
		}
		t.workerPID = append(t.workerPID, pid)
	}
	return t
}

// statsURLOf turns ws://host:port/prefix/bokeh/sub/ into http://host:port/stats.
func statsURLOf(ws string) string {
	rest, ok := strings.CutPrefix(ws, "ws://")
	scheme := "http://"
	if !ok {
		if rest, ok = strings.CutPrefix(ws, "wss://"); !ok {
			return ""
		}
		scheme = "https://"
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + host + "/stats"
}

// profileDir, when set (--profile-dir), makes every started server write a CPU profile
// there (BOKEH_CPUPROFILE, read by bokeh-server and ws-worker).
var profileDir string

func profileEnv(name string) []string {
	if profileDir == "" {
		return nil
	}
	return []string{"BOKEH_CPUPROFILE=" + filepath.Join(profileDir, name+".pprof")}
}

// pids are the processes of a started topology: the API, its children (a managed redis)
// and the workers; empty when attached.
func (t *topology) pids() []int {
	if t.api == nil {
		return nil
	}
	out := append([]int{t.api.pid()}, childPIDs(t.api.pid())...)
	for _, w := range t.workers {
		out = append(out, w.pid())
	}
	return out
}

// childPIDs lists the children of pid (from /proc).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// curveKeys makes a CURVE keypair for a bench API and one for its workers: the API's
// secret goes in its environment, the workers' public key in the allow-list directory
// (under dir), their secret and the API's public key in their environment.
func curveKeys(dir string) (allowDir string, serverEnv, workerEnv []string, err error) {
	serverPub, serverSecret, err := broker.NewKeypair()
	if err != nil {
		return "", nil, nil, err
	}
	workerPub, workerSecret, err := broker.NewKeypair()
	if err != nil {
		return "", nil, nil, err
	}
	allowDir = filepath.Join(dir, "curve-allow")
	if err := os.MkdirAll(allowDir, 0o700); err != nil {
		return "", nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(allowDir, "workers.pub"), []byte(workerPub+"\n"), 0o644); err != nil {
		return "", nil, nil, err
	}
	return allowDir, []string{"BOKEH_ZMQ_CURVE_KEY=" + serverSecret},
		[]string{"BOKEH_ZMQ_CURVE_KEY=" + workerSecret, "BOKEH_ZMQ_CURVE_SERVER_KEY=" + serverPub}, nil
}

// freePortRun returns the first of n consecutive free loopback ports (bokeh-server's
// --ws-port with --ws-workers n).
func (l *launcher) freePortRun(n int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 200 {
		base := 20000 + rand.IntN(30000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			if l.ports[p] {
				ok = false
				break
			}
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			for p := base; p < base+n; p++ {
				l.ports[p] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}

// startManaged starts bokeh-server on the memory backend with n workers of its own
// (--ws-workers), as in production: it hands pages out over them (bokeh/wsurl/) and
// restarts those that die. Worker process ids are found with managedWorkers.
func (l *launcher) startManaged(n int) (*topology, error) {
	apiPort, err := l.freePort()
	if err != nil {
		return nil, err
	}
	zmqPort, err := l.freePort()
	if err != nil {
		return nil, err
	}
	wsPort, err := l.freePortRun(n)
	if err != nil {
		return nil, err
	}
	t := &topology{backend: "memory", apiRoot: "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/",
		zmqAddr: "tcp://127.0.0.1:" + strconv.Itoa(zmqPort)}
	args := []string{"--ip", "127.0.0.1", "--port", strconv.Itoa(apiPort), "--backend", "memory",
		"--zmqaddr", t.zmqAddr, "--ws-port", strconv.Itoa(wsPort), "--ws-workers", strconv.Itoa(n)}
	// Its workers inherit the environment: %p gives each process a profile of its own.
	env := append(profileEnv("bokeh-server-managed-"+strconv.Itoa(apiPort)+"-%p"), "BOKEH_SECRET_KEY="+benchSecret)
	if t.api, err = l.start(fmt.Sprintf("bokeh-server-managed-%d", apiPort), l.bin("bokeh-server"), args, env); err != nil {
		return nil, err
	}
	if err := waitHTTP(t.api, t.apiRoot+"bokeh/ping"); err != nil {
		return nil, err
	}
	for i := range n {
		base := "127.0.0.1:" + strconv.Itoa(wsPort+i)
		if err := waitHTTP(t.api, "http://"+base+"/healthz"); err != nil {
			return nil, err
		}
		t.wsURLs = append(t.wsURLs, "ws://"+base+"/bokeh/sub/")
		t.statsURLs = append(t.statsURLs, "http://"+base+"/stats")
	}
	return t, nil
}

// managedWorkers lists the process ids of t's API's ws-worker children.
func (t *topology) managedWorkers() []int {
	var out []int
	for _, pid := range childPIDs(t.api.pid()) {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil && strings.TrimSpace(string(b)) == "ws-worker" {
			out = append(out, pid)
		}
	}
	return out
}
