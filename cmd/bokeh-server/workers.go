package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Restart backoff of crashed workers: doubling from the first to the max, and reset once a
// worker has stayed up for backoffReset.
const (
	backoffFirst     = 200 * time.Millisecond
	backoffMax       = 15 * time.Second
	backoffReset     = 30 * time.Second
	workerReadyWait  = 15 * time.Second
	workerReadyProbe = 50 * time.Millisecond
)

// workerPool runs the websocket worker children and tells wsurl which are up.
type workerPool struct {
	bin     string
	ip      string
	args    func(port int) []string
	env     []string
	log     *slog.Logger
	workers []*workerProc
	next    atomic.Uint64
	wg      sync.WaitGroup
}

type workerProc struct {
	port int
	up   atomic.Bool
	mu   sync.Mutex
	cmd  *exec.Cmd
	// run numbers the worker's runs: it changes when a run ends, so that a readiness
	// probe of a run that has ended already cannot mark the worker up again.
	run uint64
}

// currentRun is the number of the run about to start or running.
func (w *workerProc) currentRun() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.run
}

// markUp marks the worker up if run is still the current run.
func (w *workerProc) markUp(run uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run == run {
		w.up.Store(true)
	}
}

// markGone marks the worker down for good when run ends (idempotent per run).
func (w *workerProc) markGone(run uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run == run {
		w.run++
		w.up.Store(false)
	}
}

func newWorkerPool(bin, ip string, firstPort, n int, args func(int) []string, env []string, log *slog.Logger) *workerPool {
	p := &workerPool{bin: bin, ip: ip, args: args, env: env, log: log}
	for i := 0; i < n; i++ {
		p.workers = append(p.workers, &workerProc{port: firstPort + i})
	}
	return p
}

// Run starts every worker and keeps it running until ctx ends.
func (p *workerPool) Run(ctx context.Context) {
	for _, w := range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.keepRunning(ctx, w)
		}()
	}
}

// Wait returns when every worker has exited (after ctx ended and Stop was called).
func (p *workerPool) Wait() { p.wg.Wait() }

func (p *workerPool) keepRunning(ctx context.Context, w *workerProc) {
	backoff := backoffFirst
	for ctx.Err() == nil {
		started := time.Now()
		prefix := fmt.Sprintf("[ws-worker :%d] ", w.port)
		run := w.currentRun()
		// The worker is marked down as soon as its output ends (it died), before it is
		// reaped: from then on wsurl no longer hands it out.
		cmd, exited, err := startChildNotify(prefix, p.bin, p.args(w.port), p.env, func() { w.markGone(run) })
		if err != nil {
			p.log.Error("cannot start websocket worker", "port", w.port, "err", err)
		} else {
			w.mu.Lock()
			w.cmd = cmd
			w.mu.Unlock()
			p.log.Info("websocket worker started", "port", w.port, "pid", cmd.Process.Pid)
			readyCtx, cancelReady := context.WithCancel(ctx)
			go func() {
				if waitHealthy(readyCtx, p.ip, w.port) {
					w.markUp(run)
				}
			}()
			err = <-exited
			cancelReady()
			w.markGone(run)
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("websocket worker exited; restarting", "port", w.port, "err", err, "backoff", backoff)
		}
		if time.Since(started) > backoffReset {
			backoff = backoffFirst
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// waitHealthy polls the worker's /healthz until it answers.
func waitHealthy(ctx context.Context, ip string, port int) bool {
	url := "http://" + net.JoinHostPort(probeHost(ip), strconv.Itoa(port)) + "/healthz"
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(workerReadyWait)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(workerReadyProbe):
		}
	}
	return false
}

// probeHost is where to reach a server listening on ip from this machine.
func probeHost(ip string) string {
	if ip == "" || ip == "0.0.0.0" || ip == "::" {
		return "127.0.0.1"
	}
	return ip
}

// NextWorkerPort picks the next live worker, round robin (api.WorkerPicker).
func (p *workerPool) NextWorkerPort() (int, bool) {
	n := len(p.workers)
	start := p.next.Add(1)
	for i := 0; i < n; i++ {
		w := p.workers[(start+uint64(i))%uint64(n)]
		if w.up.Load() {
			return w.port, true
		}
	}
	return 0, false
}

// Stop asks every worker to shut down (SIGTERM, so they close websockets with "going away")
// and kills those still running after timeout.
func (p *workerPool) Stop(timeout time.Duration) {
	for _, w := range p.workers {
		w.mu.Lock()
		if w.cmd != nil && w.cmd.Process != nil {
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
		}
		w.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		for _, w := range p.workers {
			w.mu.Lock()
			if w.cmd != nil && w.cmd.Process != nil {
				_ = w.cmd.Process.Kill()
			}
			w.mu.Unlock()
		}
		<-done
	}
}
