// Command ws-worker is a websocket worker of bokeh-server (PROTOCOL.md §1.5): it serves
// browsers' websocket subscriptions and relays the changes API processes publish on ZeroMQ.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/cmd/internal/cpuprofile"
	"github.com/bokeh-go/bokeh-server/cmd/internal/gctune"
	"github.com/bokeh-go/bokeh-server/cmd/internal/proctune"
	"github.com/bokeh-go/bokeh-server/cmd/ws-worker/wshub"
)

// Server timeouts; websockets are hijacked (and set their own read deadlines), so these only
// bound handshakes and the small HTTP endpoints: none has a body, so a request has its
// headers and any body it sends anyway within readTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 15 * time.Second
	idleTimeout       = 2 * time.Minute
	// shutdownSlack is added to the drain window for connections to finish their close
	// handshakes before they are cut.
	shutdownSlack = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code: 0 after a clean shutdown, 1 when
// serving failed, 2 for bad flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stdout)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ws-worker: %v\nRun 'ws-worker --help' for usage.\n", err)
		return 2
	}
	if o.checkConfig {
		fmt.Fprintf(stdout, "ws-worker: configuration OK: listen %s:%d%s/bokeh/sub, zmq %s (CURVE %v), api %s\n",
			o.ip, o.wsPort, o.urlPrefix, o.zmqAddr, o.curve.Enabled(), o.apiURL)
		return 0
	}
	log := newLogger(o, stderr)
	if o.secretOnArgv {
		log.Warn("--secret-key on the command line can be read by any local user (/proc/<pid>/cmdline, ps): use --secret-key-file or $" + secretEnv)
	}
	defer cpuprofile.Start(log)()
	defer gctune.Start(uint64(max(o.gcHeadroom, 0))<<20, log)()
	if o.mallocTune {
		proctune.Malloc()
	}
	if err := serve(ctx, o, getenv, log); err != nil {
		log.Error("ws-worker failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, o options, getenv func(string) string, log *slog.Logger) error {
	hub, err := wshub.New(wshub.Config{
		ZMQAddr: o.zmqAddr, APIURL: o.apiURL, SecretKey: o.secretKey, AllowedOrigins: o.allowedOrigins,
		MaxQueueBytes: o.maxQueueBytes, MaxConnections: connectionLimit(o.maxConns, log),
		PingInterval: o.pingInterval, WriteTimeout: o.writeTimeout,
		DrainTimeout: drainSetting(o.drainTimeout), HWM: o.zmqHWM, Curve: o.curve, Logger: log,
	})
	if err != nil {
		return err
	}
	if o.zmqSlice > 0 {
		proctune.ZMQThreads(o.zmqSlice, log)
	}
	addr := net.JoinHostPort(o.ip, strconv.Itoa(o.wsPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		hub.Shutdown(context.Background())
		return fmt.Errorf("listen %s: %w (is another ws-worker running? use --ws-port)", addr, err)
	}
	srv := &http.Server{Handler: hub.Handler(o.urlPrefix), ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout: readTimeout, IdleTimeout: idleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("ws-worker listening", "websocket", "ws://"+ln.Addr().String()+o.urlPrefix+"/bokeh/sub/",
		"zmq", o.zmqAddr, "api", o.apiURL)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if want := getenv(parentEnv); want != "" {
		go watchParent(ctx, want, os.Getppid, parentPollInterval, log, cancel)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("ws-worker shutting down", "drain", o.drainTimeout)
	case serveErr = <-served:
		serveErr = fmt.Errorf("serve %s: %w", ln.Addr(), serveErr)
	case serveErr = <-hub.Failed():
		log.Error("ws-worker cannot go on", "err", serveErr)
	}
	sctx, scancel := context.WithTimeout(context.Background(), o.drainTimeout+shutdownSlack)
	defer scancel()
	srv.Shutdown(sctx) // stops accepting; hijacked websockets are the hub's to close
	if err := hub.Shutdown(sctx); err != nil {
		log.Warn("websocket drain incomplete", "err", err)
	}
	log.Info("ws-worker stopped")
	return serveErr
}

// filesReserve is what a worker keeps of its open-files limit for everything but
// websockets: its listener, ZeroMQ, doc-key lookups, probes, handshakes being refused.
const filesReserve = 256

// connectionLimit is --max-connections, or by default what the open-files limit (which Go
// raised to the hard limit at start) leaves for websockets.
func connectionLimit(flag int, log *slog.Logger) int {
	if flag > 0 {
		return flag
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) {
		return 0
	}
	limit := int(min(rl.Cur, 1<<30)) - filesReserve
	if limit < 1 {
		log.Warn("open-files limit too low for websockets", "ulimit_n", rl.Cur)
		limit = 1
	}
	log.Info("connection limit from the open-files limit", "max_connections", limit, "ulimit_n", rl.Cur)
	return limit
}

// drainSetting maps the flag's 0 ("close all at once") to the hub's "none" value.
func drainSetting(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
