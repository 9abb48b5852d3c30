package cluster

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// ServerOptions describe one bokeh-server process.
type ServerOptions struct {
	Backend    string // memory (default), shelve or redis
	MultiUser  bool
	Workers    int  // auto-started ws-workers (default 1)
	NoWSStart  bool // start none
	ZMQAddr    string
	ZMQConnect bool
	DataDir    string // default: a fresh temporary directory
	RedisPort  int    // redis backend: an already running redis (see storage/redistest)
	StartRedis bool   // redis backend: let bokeh-server start its own redis on RedisPort
	Prefix     string
	SecretKey  string
	Extra      []string
	Env        []string // added to the server's environment (e.g. PYTHONPATH for --script)
}

// Server is a running bokeh-server.
type Server struct {
	*Proc
	Opts   ServerOptions
	Port   int
	WSPort int    // first worker port
	Base   string // http://127.0.0.1:port
	Root   string // Base + prefix + "/"
}

// StartServer starts bokeh-server and waits until it (and its workers) serve.
func StartServer(tb testing.TB, b Binaries, o ServerOptions) *Server {
	tb.Helper()
	if o.Backend == "" {
		o.Backend = "memory"
	}
	if o.Workers == 0 && !o.NoWSStart {
		o.Workers = 1
	}
	if o.ZMQAddr == "" {
		o.ZMQAddr = ZMQAddr(tb)
	}
	if o.DataDir == "" {
		o.DataDir = tb.TempDir()
	}
	if o.SecretKey == "" {
		o.SecretKey = "cluster-test-secret"
	}
	s := &Server{Opts: o, Port: FreePort(tb)}
	s.Base = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	s.Root = s.Base + o.Prefix + "/"
	args := []string{"--ip", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--backend", o.Backend,
		"--data-dir", o.DataDir, "--zmqaddr", o.ZMQAddr,
		"--bokehjs-dir", BuildDir("BOKEHJS_DIR", "build/bokehjs-0.8.2"),
		"--static-dir", BuildDir("BOKEH_STATIC_DIR", "build/static"),
		"--ws-worker-bin", b.Worker}
	if o.MultiUser {
		args = append(args, "-m")
	}
	if o.NoWSStart {
		args = append(args, "--no-ws-start")
	} else {
		s.WSPort = FreePorts(tb, o.Workers)
		args = append(args, "--ws-workers", strconv.Itoa(o.Workers), "--ws-port", strconv.Itoa(s.WSPort))
	}
	if o.ZMQConnect {
		args = append(args, "--zmq-connect")
	}
	if o.Backend == "redis" {
		args = append(args, "--redis-port", strconv.Itoa(o.RedisPort))
		if !o.StartRedis {
			args = append(args, "--no-start-redis")
		}
	}
	if o.Prefix != "" {
		args = append(args, "--url-prefix", o.Prefix)
	}
	args = append(args, o.Extra...)
	// The secret goes through the environment, never a command line (README, Security).
	env := append([]string{"BOKEH_SECRET_KEY=" + o.SecretKey}, o.Env...)
	s.Proc = StartProc(tb, fmt.Sprintf("bokeh-server :%d", s.Port), b.Server, args, env)
	s.WaitReady(tb)
	return s
}

// WaitReady waits for the API and, with auto-started workers, for a worker to be handed out.
func (s *Server) WaitReady(tb testing.TB) {
	tb.Helper()
	WaitHTTP(tb, s.Proc, s.Root+"bokeh/ping")
	if !s.Opts.NoWSStart {
		WaitHTTP(tb, s.Proc, s.Root+"bokeh/wsurl/")
		for i := 0; i < s.Opts.Workers; i++ {
			WaitHTTP(tb, s.Proc, "http://127.0.0.1:"+strconv.Itoa(s.WSPort+i)+"/healthz")
		}
		s.waitWorkersHandedOut(tb)
	}
}

// workersUpWait bounds how long the API may take to hand out every worker.
const workersUpWait = 10 * time.Second

// waitWorkersHandedOut waits until wsurl has named every auto-started worker. The API
// hands a worker out once its own probe has seen it healthy, a moment after the worker
// answers: a test that kills one worker right after the start must find the others up.
// With --ws-conn-string, wsurl names no worker port, and there is nothing to wait for.
func (s *Server) waitWorkersHandedOut(tb testing.TB) {
	tb.Helper()
	seen := map[int]bool{}
	for deadline := time.Now().Add(workersUpWait); len(seen) < s.Opts.Workers; {
		resp, err := http.Get(s.Root + "bokeh/wsurl/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p := URLPort(string(body))
				if p < s.WSPort || p >= s.WSPort+s.Opts.Workers {
					return
				}
				if !seen[p] {
					seen[p] = true
					continue
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bokeh-server :%d handed out %d of its %d workers within %v", s.Port, len(seen), s.Opts.Workers, workersUpWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Restart stops the server gracefully and starts it again with the same settings and ports.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Proc.Restart(tb)
	s.WaitReady(tb)
}

// WorkerOptions describe one hand-started ws-worker.
type WorkerOptions struct {
	Env       []string // added to the worker's environment
	ZMQAddr   string
	APIRoot   string // the API's root URL, prefix included, ending in '/'
	SecretKey string
	Prefix    string
	Extra     []string
	Port      int // listen port; 0 picks a free one
}

// Worker is a running ws-worker.
type Worker struct {
	*Proc
	Port int
}

// StartWorker starts a ws-worker and waits until it serves.
func StartWorker(tb testing.TB, b Binaries, o WorkerOptions) *Worker {
	tb.Helper()
	if o.SecretKey == "" {
		o.SecretKey = "cluster-test-secret"
	}
	w := &Worker{Port: o.Port}
	if w.Port == 0 {
		w.Port = FreePort(tb)
	}
	args := []string{"--ip", "127.0.0.1", "--ws-port", strconv.Itoa(w.Port), "--zmqaddr", o.ZMQAddr,
		"--api-url", o.APIRoot}
	if o.Prefix != "" {
		args = append(args, "--url-prefix", o.Prefix)
	}
	args = append(args, o.Extra...)
	w.Proc = StartProc(tb, fmt.Sprintf("ws-worker :%d", w.Port), b.Worker, args, append([]string{"BOKEH_SECRET_KEY=" + o.SecretKey}, o.Env...))
	WaitHTTP(tb, w.Proc, w.URL()+"/healthz")
	return w
}

// URL is the worker's http base URL.
func (w *Worker) URL() string { return "http://127.0.0.1:" + strconv.Itoa(w.Port) }

// StartForwarder runs `bokeh-server forwarder` between in and out.
func StartForwarder(tb testing.TB, b Binaries, in, out string) *Proc {
	tb.Helper()
	return StartProc(tb, "forwarder", b.Server, []string{"forwarder", "--in", in, "--out", out}, nil)
}
