// Command bokeh-server is the plot server's API process: it serves the bokeh 0.8 HTTP
// protocol, stores documents, publishes changes over ZeroMQ and supervises ws-worker children.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cpuprofile"
	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
	"github.com/bokeh-go/bokeh-server/cmd/internal/gctune"
	"github.com/bokeh-go/bokeh-server/cmd/internal/proctune"
	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "forwarder":
			os.Exit(runForwarder(os.Args[2:]))
		case "keygen":
			os.Exit(runKeygen(os.Args[2:], os.Stdout, os.Stderr))
		case "probe":
			os.Exit(runProbe(os.Args[2:]))
		}
	}
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bokeh-server:", err)
		os.Exit(2)
	}
	if o.CheckConfig {
		prefix, err := api.NormalizePrefix(o.URLPrefix)
		if err == nil {
			_, _, err = publisherCurve(o, os.Getenv)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bokeh-server:", err)
			os.Exit(2)
		}
		fmt.Println("bokeh-server: configuration OK")
		printBanner(os.Stdout, o, net.JoinHostPort(o.IP, strconv.Itoa(o.Port)), prefix, api.Config{BokehJSDir: o.BokehJSDir})
		os.Exit(0)
	}
	log := newLogger(os.Stderr, o.LogFormat, o.Debug)
	slog.SetDefault(log)
	redis.SetLogger(redisClientLog{log})
	stopProfile := cpuprofile.Start(log)
	stopGC := gctune.Start(uint64(max(o.GCHeadroom, 0))<<20, log)
	if o.MallocTune {
		proctune.Malloc()
	}
	err = run(o, log)
	stopGC()
	stopProfile()
	if err != nil {
		log.Error("bokeh-server stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(w io.Writer, format string, debug bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// secretKey picks the shared secret: flag, file, environment, or a random one (then sessions
// do not survive a restart and other processes cannot share them, which the log says).
func secretKey(o *options, log *slog.Logger) (string, error) {
	switch {
	case o.SecretKey != "":
		log.Warn("--secret-key on the command line can be read by any local user (/proc/<pid>/cmdline, ps): use --secret-key-file or $BOKEH_SECRET_KEY")
		return o.SecretKey, nil
	case o.SecretFile != "":
		b, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return "", fmt.Errorf("--secret-key-file: %w", err)
		}
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, nil
		}
		return "", fmt.Errorf("--secret-key-file %s is empty", o.SecretFile)
	case os.Getenv("BOKEH_SECRET_KEY") != "":
		return os.Getenv("BOKEH_SECRET_KEY"), nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if o.MultiUser || o.NoWSStart {
		log.Warn("no --secret-key given: using a random one; sessions end at restart and other processes cannot verify them")
	}
	return hex.EncodeToString(b), nil
}

// publisherOrigin names this API process to the workers, the same after a restart, so that
// they recognise the restart (broker.WithOrigin): the host name and the HTTP address, which
// no other API process can share while this one runs.
func publisherOrigin(o *options) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return host + "/" + net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
}

// besideBinary resolves a default path relative to the directory holding this program
// (bin/../build/...), falling back to the working directory.
func besideBinary(rel string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "..", rel)
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p)
		}
	}
	return rel
}

func workerBinary(o *options) (string, error) {
	if o.WorkerBin != "" {
		return o.WorkerBin, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "ws-worker")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("ws-worker program not found next to bokeh-server: build it (make build), pass --ws-worker-bin, or use --no-ws-start")
}

func run(o *options, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.BlazeConfig != "" || o.DataDirectory != "" || o.DebugJS || o.SplitJS || o.RobustReload {
		log.Warn("ignoring compatibility flags (-D/--blaze-config, --data-directory, -j, -s, --robust-reload): not supported by this server")
	}
	secret, err := secretKey(o, log)
	if err != nil {
		return err
	}
	prefix, err := api.NormalizePrefix(o.URLPrefix)
	if err != nil {
		return err
	}

	cfg := storage.Config{Backend: o.Backend, DataDir: o.DataDir, OverlayTTL: o.OverlayTTL}
	if o.Backend == storage.BackendRedis {
		var managed *managedRedis
		if cfg.Redis, managed, err = redisSettings(ctx, o, log); err != nil {
			return err
		}
		defer managed.Stop()
	}
	store, err := openStorage(ctx, cfg, o.StorageWait, log)
	if err != nil {
		return fmt.Errorf("open %s storage: %w", o.Backend, err)
	}
	defer store.Close()

	mode := broker.Bind
	if o.ZMQConnect {
		mode = broker.Connect
	}
	curve, curveEnv, err := publisherCurve(o, os.Getenv)
	if err != nil {
		return err
	}
	pub, err := broker.NewZMQPublisher(o.ZMQAddr, mode, broker.WithHWM(o.ZMQHWM),
		broker.WithOrigin(publisherOrigin(o)), broker.WithCurve(curve), broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer pub.Close()
	if o.ZMQSlice > 0 {
		proctune.ZMQThreads(o.ZMQSlice, log)
	}

	var pool *workerPool
	if !o.NoWSStart {
		bin, err := workerBinary(o)
		if err != nil {
			return err
		}
		apiURL := "http://" + net.JoinHostPort(probeHost(o.IP), strconv.Itoa(o.Port)) + prefix + "/"
		args := func(port int) []string {
			a := []string{"--ip", o.IP, "--ws-port", strconv.Itoa(port), "--zmqaddr", o.ZMQAddr,
				"--api-url", apiURL, "--url-prefix", prefix, "--log-format", o.LogFormat,
				"--gc-headroom", strconv.Itoa(o.GCHeadroom), "--malloc-tuning=" + strconv.FormatBool(o.MallocTune),
				"--zmq-thread-slice", o.ZMQSlice.String()}
			if o.Debug {
				a = append(a, "--debug")
			}
			return a
		}
		env := append([]string{"BOKEH_SECRET_KEY=" + secret, "BOKEH_WORKER_PARENT_PID=" + strconv.Itoa(os.Getpid())}, curveEnv...)
		pool = newWorkerPool(bin, o.IP, o.WSPort, o.WSWorkers, args, env, log)
	}

	acfg := api.Config{
		URLPrefix:    prefix,
		MultiUser:    o.MultiUser,
		SecretKey:    secret,
		WSConnString: o.WSConn,
		MaxBodyBytes: o.MaxBody,
		BokehJSDir:   o.BokehJSDir,
		StaticDir:    o.StaticDir,
		FilterLogs:   o.FilterLogs,
		Logger:       log,

		TrustedProxies: o.TrustedProxies,
		ListenHost:     o.IP,
		AllowedHosts:   o.AllowedHosts,
		AllowedOrigins: o.AllowedOrigins,
		ReadTimeout:    o.ReadTimeout,
		Scratch:        api.ScratchLimits{DocBytes: o.ScratchDoc, ViewerBytes: o.ScratchViewer},
		OverlayTTL:     o.OverlayTTL,
	}
	if acfg.BokehJSDir == "" {
		acfg.BokehJSDir = besideBinary(filepath.Join("build", "bokehjs-0.8.2"))
	}
	if acfg.StaticDir == "" {
		acfg.StaticDir = besideBinary(filepath.Join("build", "static"))
	}
	switch {
	case pool != nil:
		acfg.Workers = pool
	case o.WSConn == "":
		// Workers started by hand on --ws-port, as in the original 0.6 topology.
		acfg.Workers = &api.StaticWorkers{Ports: []int{o.WSPort}}
	}
	if o.Script != "" {
		host, err := startAppletHost(ctx, o, log)
		if err != nil {
			return err
		}
		defer host.Close()
		acfg.Applets, acfg.AppletTTL = host, o.OverlayTTL
	}
	srv, err := api.New(acfg, store, pub)
	if err != nil {
		return err
	}

	addr := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another bokeh-server running? use --port)", addr, err)
	}
	conns := &newConns{m: map[net.Conn]struct{}{}}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         conns.track,
	}
	workerCtx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	if pool != nil {
		pool.Run(workerCtx)
	}
	go srv.RunDocExpiry(workerCtx)
	printBanner(os.Stdout, o, addr, prefix, acfg)
	logAppletPages(log, acfg, "http://"+addr+prefix)

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests, stopping workers")
	shutCtx, cancel := context.WithTimeout(context.Background(), o.ShutdownFor)
	defer cancel()
	workersDone := make(chan struct{})
	go func() {
		// Workers drain their websockets while the API finishes its requests.
		defer close(workersDone)
		if pool != nil {
			stopWorkers()
			pool.Stop(o.ShutdownFor)
		}
	}()
	// Shutdown waits 5 s for connections that never sent a request (browser preconnects,
	// pooled client connections); nothing is lost by closing them at once.
	conns.closeAll()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	<-workersDone
	log.Info("bokeh-server stopped")
	return nil
}

// newConns tracks connections that have not sent a request yet.
type newConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (n *newConns) track(c net.Conn, state http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if state == http.StateNew {
		n.m[c] = struct{}{}
	} else {
		delete(n.m, c)
	}
}

func (n *newConns) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.m {
		c.Close()
	}
}

// openStorage opens the backend, waiting up to wait (with backoff) for a redis that is not
// reachable yet, as when an orchestrator starts redis and the API together.
func openStorage(ctx context.Context, cfg storage.Config, wait time.Duration, log *slog.Logger) (storage.Store, error) {
	deadline := time.Now().Add(wait)
	backoff := 100 * time.Millisecond
	for {
		store, err := storage.Open(ctx, cfg)
		if err == nil || !errors.Is(err, storage.ErrUnavailable) || time.Now().After(deadline) {
			return store, err
		}
		log.Warn("storage not reachable yet; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// zmqSecurity says how ZeroMQ is protected, for the banner.
func zmqSecurity(o *options) string {
	switch {
	case o.Curve.KeyFile != "" || os.Getenv(curvekeys.EnvSecret) != "":
		return "CURVE"
	case o.CurveLocal:
		return "CURVE, keys made at start"
	case o.Curve.Insecure:
		return "plaintext (--zmq-insecure)"
	}
	return "plaintext, loopback only"
}

func printBanner(w io.Writer, o *options, addr, prefix string, cfg api.Config) {
	mode := "single-user"
	if o.MultiUser {
		mode = "multi-user"
	}
	backend := o.Backend
	switch {
	case o.Backend == storage.BackendShelve:
		backend += " (" + filepath.Join(o.DataDir, "bokeh.db") + ")"
	case o.Backend == storage.BackendRedis && o.RedisURL != "":
		backend += " (--redis-url)"
	case o.Backend == storage.BackendRedis && len(o.RedisSentinels) > 0:
		backend += fmt.Sprintf(" (master %q of sentinels %s)", o.RedisMaster, strings.Join(o.RedisSentinels, ", "))
	case o.Backend == storage.BackendRedis:
		backend += fmt.Sprintf(" (%s:%d, started here: %v)", o.RedisHost, o.RedisPort, o.StartRedis)
	}
	if o.Backend == storage.BackendRedis && o.RedisWaitReplicas > 0 {
		backend += fmt.Sprintf(", writes wait for %d replica(s) up to %v", o.RedisWaitReplicas, o.RedisWaitTimeout)
	}
	workers := fmt.Sprintf("%d on ports %d-%d", o.WSWorkers, o.WSPort, o.WSPort+o.WSWorkers-1)
	if o.NoWSStart {
		workers = "none started here (--no-ws-start)"
	}
	fmt.Fprintf(w, `Bokeh Server Configuration
==========================
bokeh-server (Go), protocol of bokeh 0.8.2 (and 0.7.0)
listening on      : http://%s%s/
backend           : %s
mode              : %s
websocket workers : %s
zeromq            : %s (%s, %s)
bokehjs           : %s
trusted proxies   : %s
allowed hosts     : IP addresses, localhost, this machine's name%s
allowed origins   : this server's own pages%s
`, addr, prefix, backend, mode, workers, o.ZMQAddr, map[bool]string{true: "connect", false: "bind"}[o.ZMQConnect],
		zmqSecurity(o), cfg.BokehJSDir,
		listOr(fmt.Sprint(o.TrustedProxies), len(o.TrustedProxies) == 0, "none (X-Forwarded-* ignored)"),
		listOr(", "+strings.Join(o.AllowedHosts, ", "), len(o.AllowedHosts) == 0, ""),
		listOr(", "+strings.Join(o.AllowedOrigins, ", "), len(o.AllowedOrigins) == 0, " (other sites: published documents only)"))
}

// listOr is list, or instead when empty is true.
func listOr(list string, empty bool, instead string) string {
	if empty {
		return instead
	}
	return list
}

// runProbe is the "probe" subcommand: a health check for images without curl.
func runProbe(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: bokeh-server probe URL")
		return 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "probe:", resp.Status)
		return 1
	}
	return 0
}
