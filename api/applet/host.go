// Package applet runs a bokeh 0.8 applet script (bokeh-server --script FILE) in a supervised
// Python child process, the host, which builds and changes bokeh models when the API asks.
package applet

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed host.py
var hostProgram []byte

// Defaults and limits of the host.
const (
	DefaultPython      = "python3"
	DefaultThreads     = 8
	DefaultCallTimeout = 60 * time.Second
	// helloWait bounds the start-up: importing numpy, pandas and bokeh takes seconds.
	defaultHelloWait = 2 * time.Minute
	// stopWait is how long Close lets the host exit on its own before killing it.
	stopWait = 3 * time.Second
	// Restart backoff after a crash, as for websocket workers.
	backoffFirst = 200 * time.Millisecond
	backoffMax   = 15 * time.Second
	backoffReset = 30 * time.Second
	outputTail   = 40 // lines of output kept for start-up errors
)

// Options say which script to run and how.
type Options struct {
	Script      string
	Python      string        // interpreter (default python3, looked up in $PATH)
	Threads     int           // calls the host runs at once (default DefaultThreads)
	CallTimeout time.Duration // bound of one call (default DefaultCallTimeout)
	Env         []string      // added to this process's environment
	Output      io.Writer     // where the host's stdout and stderr go, line-prefixed (default os.Stderr)
	Prefix      string        // line prefix of that output (default "[applet-host] ")
	// Start starts the host process (default (*exec.Cmd).Start); bokeh-server passes one
	// that makes the child die with it.
	Start     func(*exec.Cmd) error
	Logger    *slog.Logger
	HelloWait time.Duration
}

// Route is one route the script registered on bokeh_app.
type Route struct {
	Rule     string   `json:"rule"`     // Werkzeug rule, e.g. /bokeh/sliders/
	Methods  []string `json:"methods"`  // without HEAD and OPTIONS
	Endpoint string   `json:"endpoint"` // e.g. bokeh.server.make_sliders
	// ObjectPage is the document title prefix of an object_page route; nil for a plain
	// Flask view, whose response the host makes itself.
	ObjectPage *string `json:"object_page"`
}

// Info is what the host reported when it started.
type Info struct {
	Routes []Route `json:"routes"`
	// CallbackTypes are the model types whose setup_events attaches callbacks (the script's
	// classes, CrossFilter, SimpleApp): a document holding one is an applet document.
	CallbackTypes []string `json:"callback_types"`
	// GeneratedClasses are the [module, class, parent] triples of the script's classes'
	// extra_generated_classes: the BokehJS stubs its pages load from jsgenerate.
	GeneratedClasses [][3]string `json:"generated_classes"`
	Python           string      `json:"python"`
	Executable       string      `json:"executable"`
	Bokeh            string      `json:"bokeh"`
}

// Host is the running host, restarted with backoff when it crashes.
type Host struct {
	opts Options
	log  *slog.Logger
	dir  string // holds host.py
	info Info

	mu     sync.Mutex
	proc   *process // nil while restarting
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// Start starts the host and waits until it has imported the script. A missing interpreter
// or an error in the script is returned with what to install or fix.
func Start(ctx context.Context, o Options) (*Host, error) {
	if o.Python == "" {
		o.Python = DefaultPython
	}
	if o.Threads <= 0 {
		o.Threads = DefaultThreads
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.HelloWait <= 0 {
		o.HelloWait = defaultHelloWait
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	if o.Prefix == "" {
		o.Prefix = "[applet-host] "
	}
	if o.Start == nil {
		o.Start = (*exec.Cmd).Start
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	script, err := filepath.Abs(o.Script)
	if err != nil {
		return nil, fmt.Errorf("applet script %s: %w", o.Script, err)
	}
	if st, err := os.Stat(script); err != nil || st.IsDir() {
		return nil, fmt.Errorf("applet script %s: not a readable file (--script)", o.Script)
	}
	o.Script = script
	python, err := exec.LookPath(o.Python)
	if err != nil {
		return nil, fmt.Errorf("applet host: Python interpreter %q not found: install python3 "+
			"(Debian: apt-get install python3) or name one with --script-python: %w", o.Python, err)
	}
	o.Python = python
	dir, err := os.MkdirTemp("", "bokeh-applet-host-")
	if err != nil {
		return nil, fmt.Errorf("applet host: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bokeh_applet_host.py"), hostProgram, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("applet host: %w", err)
	}
	h := &Host{opts: o, log: o.Logger, dir: dir, stop: make(chan struct{}), done: make(chan struct{})}
	p, info, err := h.spawn(ctx)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	h.info, h.proc = info, p
	h.log.Info("applet host ready", "script", o.Script, "python", info.Executable,
		"python_version", info.Python, "bokeh", info.Bokeh, "routes", len(info.Routes),
		"generated_classes", info.GeneratedClasses, "pid", p.cmd.Process.Pid)
	go h.supervise(p)
	return h, nil
}

// Info returns what the host reported at start.
func (h *Host) Info() Info { return h.info }

// spawn starts one host process and waits for its hello.
func (h *Host) spawn(ctx context.Context) (*process, Info, error) {
	args := []string{filepath.Join(h.dir, "bokeh_applet_host.py"), "--script", h.opts.Script,
		"--threads", strconv.Itoa(h.opts.Threads)}
	p, err := startProcess(h.opts, args)
	if err != nil {
		return nil, Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.HelloWait)
	defer cancel()
	info, err := p.awaitHello(ctx)
	if err != nil {
		p.kill()
		<-p.exited
		tail := p.output.lines()
		msg := fmt.Sprintf("applet script %s: %v", h.opts.Script, err)
		if len(tail) > 0 {
			msg += "\nlast output of the host:\n  " + strings.Join(tail, "\n  ")
		}
		return nil, Info{}, errors.New(msg)
	}
	return p, info, nil
}

// supervise restarts the host whenever it exits, until Close.
func (h *Host) supervise(p *process) {
	defer close(h.done)
	backoff := backoffFirst
	for {
		started := time.Now()
		select {
		case <-p.exited:
		case <-h.stop:
			p.shutdown(stopWait)
			return
		}
		h.setProc(nil)
		if time.Since(started) > backoffReset {
			backoff = backoffFirst
		}
		if p.wasStuck() {
			h.log.Error("every applet host thread was busy with a call older than --script-timeout; killed the host",
				"threads", h.opts.Threads)
		}
		h.log.Warn("applet host exited; restarting", "err", p.exitErr(), "backoff", backoff)
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, backoffMax)
			next, info, err := h.spawn(context.Background())
			if err != nil {
				h.log.Error("applet host restart failed", "err", err, "backoff", backoff)
				continue
			}
			if !sameRoutes(info.Routes, h.info.Routes) {
				h.log.Warn("the applet script's routes changed; the routes of the first start are served until bokeh-server restarts")
			}
			h.log.Info("applet host restarted", "pid", next.cmd.Process.Pid)
			p = next
			h.setProc(p)
			break
		}
	}
}

func (h *Host) setProc(p *process) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed && p != nil {
		p.kill()
		return
	}
	h.proc = p
}

func (h *Host) current() *process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc
}

// Pid is the process id of the running host, 0 while it restarts.
func (h *Host) Pid() int {
	if p := h.current(); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Close stops the host: its request pipe is closed, which makes it exit, and it is killed
// if it has not after a few seconds.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	return os.RemoveAll(h.dir)
}

func sameRoutes(a, b []Route) bool {
	return slices.EqualFunc(a, b, func(x, y Route) bool {
		return x.Rule == y.Rule && x.Endpoint == y.Endpoint && slices.Equal(x.Methods, y.Methods)
	})
}
