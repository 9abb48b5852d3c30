package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
	"github.com/bokeh-go/bokeh-server/cmd/internal/gctune"
	"github.com/bokeh-go/bokeh-server/cmd/internal/proctune"
	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/spf13/pflag"
)

// options are the command-line settings. Flag names, defaults and meanings follow the
// original bokeh-server (PROTOCOL.md §1.4), plus what a multi-process deployment needs.
type options struct {
	IP          string
	Port        int
	URLPrefix   string
	MultiUser   bool
	Backend     string
	DataDir     string
	RedisHost   string
	RedisPort   int
	RedisURL    string
	StartRedis  bool
	RedisBin    string
	OverlayTTL  time.Duration
	StorageWait time.Duration
	WSConn      string
	WSPort      int
	WSWorkers   int
	NoWSStart   bool
	WorkerBin   string
	ZMQAddr     string
	ZMQConnect  bool
	ZMQHWM      int
	Curve       curvekeys.Flags
	CurveLocal  bool
	SecretKey   string
	SecretFile  string
	MaxBody     int64
	BokehJSDir  string
	StaticDir   string
	FilterLogs  bool
	LogFormat   string
	Debug       bool
	Verbose     bool
	Dev         bool
	ShutdownFor time.Duration
	GCHeadroom  int
	MallocTune  bool
	ZMQSlice    time.Duration
	CheckConfig bool

	// Applets (--script): a Python host runs the script's pages and callbacks.
	Script        string
	ScriptPython  string
	ScriptTimeout time.Duration
	ScriptThreads int

	// Web-facing protection (api.Config has the meanings).
	TrustedProxies []netip.Prefix
	AllowedHosts   []string
	AllowedOrigins []string
	ReadTimeout    time.Duration
	ScratchDoc     int64
	ScratchViewer  int64

	// Redis credentials (from files or the environment: no password on a command line),
	// Sentinel and WAIT.
	RedisPasswordFile    string
	SentinelPasswordFile string
	RedisSentinels       []string
	RedisMaster          string
	RedisWaitReplicas    int
	RedisWaitTimeout     time.Duration

	// Accepted for compatibility with the original's command line; they change nothing.
	BlazeConfig   string
	DataDirectory string
	DebugJS       bool
	SplitJS       bool
	RobustReload  bool
	NoStartRedis  bool
}

const usageHead = `bokeh-server: a plot server for bokeh 0.8 (and 0.7) Python scripts and BokehJS pages.

Scripts push plots with output_server("name") / Session.store_objects; browsers watch them
live at http://IP:PORT/bokeh/. The API process stores documents and publishes changes over
ZeroMQ to websocket worker processes (ws-worker), which it starts by itself unless told not to.

Usage:
  bokeh-server [flags]                      run the server
  bokeh-server forwarder --in A --out B     run a ZeroMQ forwarder between several API
                                            processes (--zmqaddr A --zmq-connect) and
                                            workers (ws-worker --zmqaddr B)
  bokeh-server probe URL                    exit 0 when URL answers 200 (container
                                            health checks, e.g. http://127.0.0.1:5006/readyz)

Flags:
`

func defaultBackend() (string, error) {
	b := os.Getenv("BOKEH_SERVER_DEFAULT_BACKEND")
	switch b {
	case "":
		// The user guide's default: data survives restarts without any service to run.
		return storage.BackendShelve, nil
	case storage.BackendMemory, storage.BackendShelve, storage.BackendRedis:
		return b, nil
	}
	return "", fmt.Errorf("BOKEH_SERVER_DEFAULT_BACKEND=%q: must be redis, shelve or memory", b)
}

// parseFlags reads args (without the program name) into options.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	backend, err := defaultBackend()
	if err != nil {
		return nil, err
	}
	o := &options{}
	fs := pflag.NewFlagSet("bokeh-server", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}

	fs.StringVar(&o.IP, "ip", "127.0.0.1", "IP address the HTTP API listens on (workers listen on the same IP)")
	fs.IntVar(&o.Port, "port", 5006, "port the HTTP API listens on")
	fs.IntVar(&o.Port, "bokeh-port", 5006, "alias of --port")
	fs.StringVar(&o.URLPrefix, "url-prefix", "", "serve everything under this path prefix, e.g. /plots (for a reverse proxy)")
	fs.BoolVarP(&o.MultiUser, "multi-user", "m", false, "multi-user mode: accounts, logins and per-document permissions")
	fs.StringVar(&o.Backend, "backend", backend, "storage backend: shelve (one file in --data-dir), redis, or memory (lost on exit); default from $BOKEH_SERVER_DEFAULT_BACKEND")
	fs.StringVar(&o.DataDir, "data-dir", ".", "directory of the shelve backend's file (bokeh.db) and of the managed redis's data")
	fs.StringVar(&o.RedisHost, "redis-host", "127.0.0.1", "redis host (redis backend)")
	fs.IntVar(&o.RedisPort, "redis-port", 7001, "redis port to start and/or connect to (redis backend)")
	fs.StringVar(&o.RedisURL, "redis-url", "", "redis URL with user/TLS, e.g. rediss://bokeh@host:6379 (implies --no-start-redis); a password in it is visible to local users, give it with --redis-password-file")
	fs.StringVar(&o.RedisPasswordFile, "redis-password-file", "", "file holding the redis password (default: $BOKEH_REDIS_PASSWORD); with --start-redis, the managed redis's password, which is otherwise made at its first start and kept in DATA-DIR/redis/password")
	var sentinels string
	fs.StringVar(&sentinels, "redis-sentinel", "", "comma-separated host:port of Redis Sentinels: use the master they report for --redis-master and follow its failovers (implies --no-start-redis; --redis-host/--redis-port are not used)")
	fs.StringVar(&o.RedisMaster, "redis-master", "", "name of the master the --redis-sentinel sentinels monitor (their \"sentinel monitor NAME ...\" line)")
	fs.StringVar(&o.SentinelPasswordFile, "redis-sentinel-password-file", "", "file holding the sentinels' own password (their requirepass), if they have one (default: $BOKEH_REDIS_SENTINEL_PASSWORD)")
	fs.IntVar(&o.RedisWaitReplicas, "redis-wait-replicas", 0, "acknowledge a write only once this many redis replicas confirm they have it (redis WAIT), so that a failover cannot lose it; a write they do not confirm within --redis-wait-timeout answers 503")
	fs.DurationVar(&o.RedisWaitTimeout, "redis-wait-timeout", storage.DefaultRedisWaitTimeout, "how long a write waits for --redis-wait-replicas")
	fs.BoolVar(&o.StartRedis, "start-redis", true, "start a redis-server child for the redis backend")
	fs.BoolVar(&o.NoStartRedis, "no-start-redis", false, "use an already running redis at --redis-host:--redis-port")
	fs.StringVar(&o.RedisBin, "redis-server", "redis-server", "redis-server program started by --start-redis")
	fs.DurationVar(&o.StorageWait, "storage-wait", 30*time.Second, "at start, how long to keep retrying a redis that is not reachable yet")
	fs.DurationVar(&o.OverlayTTL, "overlay-ttl", storage.DefaultOverlayTTL, "how long a public viewer's scratch copy, and an applet page's document, is kept after its last change")
	fs.StringVar(&o.WSConn, "ws-conn-string", "", "websocket URL handed to browsers verbatim, e.g. wss://plots.example.org/bokeh/sub/; a path such as /bokeh/sub/ means the page's own host (a balancer routing it to workers)")
	fs.IntVar(&o.WSPort, "ws-port", 5007, "port of the first websocket worker; further workers use the next ports")
	fs.IntVar(&o.WSWorkers, "ws-workers", 1, "number of websocket worker processes to start; each holds as many websockets as its open-files limit allows (ulimit -Hn less 256; with 20,000, 100,000 browsers need 6), about 4 KB of memory each when idle")
	fs.BoolVar(&o.NoWSStart, "no-ws-start", false, "start no websocket worker (run ws-worker processes yourself); unless --ws-conn-string says otherwise, pages are sent to ws://<their host>:<--ws-port>/bokeh/sub/")
	fs.StringVar(&o.WorkerBin, "ws-worker-bin", "", "ws-worker program to start (default: next to this program, then $PATH)")
	fs.StringVar(&o.ZMQAddr, "zmqaddr", "tcp://127.0.0.1:5555", "ZeroMQ address where changes are published (bound, or connected with --zmq-connect)")
	fs.BoolVar(&o.ZMQConnect, "zmq-connect", false, "connect --zmqaddr to a forwarder's input instead of binding it (several API processes)")
	o.Curve.AddKey(fs)
	o.Curve.AddAllow(fs, "ws-workers started elsewhere (those started here get keys of their own)")
	o.Curve.AddClient(fs, "forwarder (with --zmq-connect)")
	fs.BoolVar(&o.CurveLocal, "zmq-curve-local", false, "on a loopback --zmqaddr, use CURVE with keys made at start for this server and the workers it starts (nothing to configure; costs CPU per update, see README)")
	fs.IntVar(&o.ZMQHWM, "zmq-hwm", broker.DefaultHWM, "ZeroMQ high-water mark: messages queued per worker (or forwarder) before further ones are dropped for it; workers notice a drop and make their pages reload")
	fs.StringVar(&o.SecretKey, "secret-key", "", "secret signing session cookies and worker requests; give every API process and worker the same one (default: $BOKEH_SECRET_KEY, else random per start)")
	fs.StringVar(&o.SecretFile, "secret-key-file", "", "read the secret key from this file")
	fs.Int64Var(&o.MaxBody, "max-request-bytes", api.DefaultMaxBodyBytes, "largest request body accepted; bigger ones get 413")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", api.DefaultReadTimeout, "time to receive a request body, plus a second per 64 KiB that arrived; slower bodies get 408")
	var proxies, hosts, origins string
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated CIDRs (or addresses) of reverse proxies whose X-Forwarded-For, X-Real-IP and X-Forwarded-Proto are believed (default none: clients could forge them)")
	fs.StringVar(&hosts, "allowed-hosts", "", "comma-separated further host names browsers may reach this server by (*.example.org for subdomains, * for any); IP addresses, localhost and this machine's name always work")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated sites (scheme://host[:port], * for any) whose pages may read and change documents like this server's own pages, e.g. a notebook at http://localhost:8888; pages of other sites see published documents only")
	fs.Int64Var(&o.ScratchDoc, "scratch-doc-bytes", api.DefaultScratchDocBytes, "public viewers' scratch copies of one document may hold this many bytes in all; more gets 429")
	fs.Int64Var(&o.ScratchViewer, "scratch-viewer-bytes", api.DefaultScratchViewerBytes, "one viewer's (client address's) scratch copies may hold this many bytes in all; more gets 429")
	fs.StringVar(&o.BokehJSDir, "bokehjs-dir", "", "BokehJS build served at /bokehjs/static/ (default: build/bokehjs-0.8.2 next to bin/)")
	fs.StringVar(&o.StaticDir, "static-dir", "", "jquery and bootstrap served at /static/ (default: build/static next to bin/)")
	fs.BoolVar(&o.FilterLogs, "filter-logs", false, "leave successful static-file requests out of the log")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	fs.BoolVarP(&o.Debug, "debug", "d", false, "debug logging")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "verbose logging (same as --debug)")
	fs.BoolVar(&o.Dev, "dev", false, "development defaults: memory backend unless --backend is given")
	fs.BoolVar(&o.MallocTune, "malloc-tuning", true, "keep freed C memory and serve ZeroMQ's message copies from the heap (glibc mallopt; here and in started workers); false: glibc's defaults")
	fs.DurationVar(&o.ZMQSlice, "zmq-thread-slice", proctune.DefaultZMQThreadSlice, "scheduler time slice of ZeroMQ's I/O threads (Linux 6.12+), so that a message leaves at once on a busy CPU (here and in started workers); 0: the kernel's default")
	fs.IntVar(&o.GCHeadroom, "gc-headroom", gctune.DefaultHeadroomMiB, "while updates stream, let the heap grow by what is allocated in a second, up to this many MiB, between garbage collections (here and in started workers); 0: Go's default pacing; $GOGC overrides")
	fs.BoolVar(&o.CheckConfig, "check-config", false, "check the flags and environment, print the effective settings and exit")
	fs.DurationVar(&o.ShutdownFor, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for requests and workers to finish")
	fs.StringVarP(&o.BlazeConfig, "blaze-config", "D", "", "accepted for compatibility; blaze is not supported")
	fs.StringVar(&o.DataDirectory, "data-directory", "", "accepted for compatibility (0.7 remote data); ignored")
	fs.StringVar(&o.Script, "script", "", "bokeh 0.8 applet script to serve, e.g. examples/app/sliders_applet/sliders_app.py: a Python child (the applet host) imports it and runs its pages and widget callbacks")
	fs.StringVar(&o.ScriptPython, "script-python", applet.DefaultPython, "Python interpreter of the applet host; bokeh 0.8, numpy, pandas and flask must be importable by it")
	fs.DurationVar(&o.ScriptTimeout, "script-timeout", applet.DefaultCallTimeout, "longest an applet page build or callback may run; a slower one answers 504 and changes nothing")
	fs.IntVar(&o.ScriptThreads, "script-threads", applet.DefaultThreads, "applet page builds and callbacks the host runs at once")
	fs.BoolVarP(&o.DebugJS, "debugjs", "j", false, "accepted for compatibility; the BokehJS build dir is chosen with --bokehjs-dir")
	fs.BoolVarP(&o.SplitJS, "splitjs", "s", false, "accepted for compatibility; pages always load bokeh.js")
	fs.BoolVar(&o.RobustReload, "robust-reload", false, "accepted for compatibility; ignored")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if o.Dev && !fs.Changed("backend") {
		o.Backend = storage.BackendMemory
	}
	if o.NoStartRedis || o.RedisURL != "" {
		o.StartRedis = false
	}
	o.Backend = strings.ToLower(o.Backend)
	switch o.Backend {
	case storage.BackendMemory, storage.BackendShelve, storage.BackendRedis:
	default:
		return nil, fmt.Errorf("--backend %q: must be redis, shelve or memory", o.Backend)
	}
	if err := o.checkRedisHA(sentinels, fs.Changed("start-redis")); err != nil {
		return nil, err
	}
	if o.WSWorkers < 1 && !o.NoWSStart {
		return nil, fmt.Errorf("--ws-workers %d: must be at least 1 (or use --no-ws-start)", o.WSWorkers)
	}
	if o.ZMQHWM < 1 {
		return nil, fmt.Errorf("--zmq-hwm %d: must be at least 1", o.ZMQHWM)
	}
	if o.Verbose {
		o.Debug = true
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: must be text or json", o.LogFormat)
	}
	if o.TrustedProxies, err = api.ParseCIDRs(proxies); err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if o.AllowedOrigins, err = api.ParseOrigins(origins); err != nil {
		return nil, fmt.Errorf("--allowed-origins: %w", err)
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.AllowedHosts = append(o.AllowedHosts, h)
		}
	}
	if o.ReadTimeout <= 0 || o.ScratchDoc <= 0 || o.ScratchViewer <= 0 {
		return nil, errors.New("--read-timeout, --scratch-doc-bytes and --scratch-viewer-bytes must be positive")
	}
	return o, nil
}
