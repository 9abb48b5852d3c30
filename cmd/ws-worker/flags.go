package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
	"github.com/bokeh-go/bokeh-server/cmd/internal/gctune"
	"github.com/bokeh-go/bokeh-server/cmd/internal/proctune"
	"github.com/bokeh-go/bokeh-server/cmd/ws-worker/wshub"
)

// secretEnv supplies --secret-key so that the secret need not appear in a process list.
const secretEnv = "BOKEH_SECRET_KEY"

type options struct {
	ip             string
	wsPort         int
	urlPrefix      string
	zmqAddr        string
	apiURL         string
	secretKey      string
	secretFile     string
	secretOnArgv   bool // --secret-key was given on the command line (main warns)
	allowedOrigins []string
	maxQueueBytes  int
	maxConns       int
	zmqHWM         int
	curveFlags     curvekeys.Flags
	curve          broker.Curve
	pingInterval   time.Duration
	writeTimeout   time.Duration
	drainTimeout   time.Duration
	gcHeadroom     int
	mallocTune     bool
	zmqSlice       time.Duration
	logFormat      string
	verbose        bool
	debug          bool
	checkConfig    bool
}

const usageHead = `Usage: ws-worker [flags]

Websocket worker of bokeh-server: browsers connect here (the address bokeh-server's
/bokeh/wsurl/ hands out) and subscribe to documents; the worker subscribes to those
topics on bokeh-server's ZeroMQ publisher (or a forwarder) and relays every change.
Run as many workers as needed behind a load balancer; they need no stickiness.

Each websocket holds an open file: a worker serves at most --max-connections of them (by
default its open-files limit, raised at start to the hard limit of ulimit -Hn, less
256 for everything else) and refuses more with 503 and Retry-After, so that pages try
again, through bokeh-server's wsurl, on another worker. An idle connection costs the
worker about 9 KB of memory (README, Performance); plan a worker per open-files limit's
worth of browsers (with a hard limit of 20,000, 100,000 browsers need 6 workers).

When the worker may have missed changes (a message dropped on the way, a publisher
restarted, its ZeroMQ connection broke), it closes the connections that watch them with
code 4001; bokeh-server's pages reconnect and reload the document at once
(bokeh_resyncs_total{reason} on /metrics counts these).

Flags:
`

// parseFlags parses args; pflag.ErrHelp means usage was printed to stdout.
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	var o options
	var origins string
	fs := pflag.NewFlagSet("ws-worker", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() { fmt.Fprint(stdout, usageHead, fs.FlagUsages()) }
	fs.StringVar(&o.ip, "ip", "127.0.0.1", "address to listen on for websocket connections (0.0.0.0 for all interfaces)")
	fs.IntVar(&o.wsPort, "ws-port", 5007, "port to listen on; bokeh-server's --ws-port must match unless --ws-conn-string points elsewhere")
	fs.StringVar(&o.urlPrefix, "url-prefix", "", "URL prefix, as given to bokeh-server: websockets are served at <prefix>/bokeh/sub and <prefix>/bokeh/sub/")
	fs.StringVar(&o.zmqAddr, "zmqaddr", "tcp://127.0.0.1:5555", "ZeroMQ address to subscribe to: bokeh-server's --zmqaddr, or a forwarder's output address")
	fs.StringVar(&o.apiURL, "api-url", "http://127.0.0.1:5006/", "root URL (with url prefix) of a bokeh-server API process, asked for document keys when browsers subscribe")
	fs.StringVar(&o.secretKey, "secret-key", "", "bokeh-server's secret key, which authenticates document-key lookups (required; prefer --secret-key-file or $"+secretEnv+": any local user can read a command line)")
	fs.StringVar(&o.secretFile, "secret-key-file", "", "read the secret key from this file")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated Origin values allowed to connect, e.g. https://plots.example.org (empty: any origin)")
	o.curveFlags.AddKey(fs)
	o.curveFlags.AddClient(fs, "publisher (bokeh-server, or the forwarder's output)")
	fs.IntVar(&o.zmqHWM, "zmq-hwm", broker.DefaultHWM, "ZeroMQ receive high-water mark in messages; beyond it the publisher drops messages for this worker, which notices and makes the affected pages reload")
	fs.IntVar(&o.maxQueueBytes, "max-queue-bytes", wshub.DefaultMaxQueueBytes, "per-connection send queue limit in bytes; a browser this far behind is disconnected")
	fs.IntVar(&o.maxConns, "max-connections", 0, "most websockets (and handshakes under way) at once; more are refused with 503 and Retry-After (0: the open-files limit less 256)")
	fs.DurationVar(&o.pingInterval, "ping-interval", wshub.DefaultPingInterval, "interval between websocket pings, which keep idle connections and proxies alive")
	fs.DurationVar(&o.writeTimeout, "write-timeout", wshub.DefaultWriteTimeout, "time allowed for one websocket write before the connection is dropped as too slow")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", wshub.DefaultDrainTimeout, "on shutdown, spread closing connections over this window so browsers do not all come back at once (0: close all at once)")
	fs.BoolVar(&o.mallocTune, "malloc-tuning", true, "keep freed C memory and serve ZeroMQ's message copies from the heap (glibc mallopt); false: glibc's defaults")
	fs.DurationVar(&o.zmqSlice, "zmq-thread-slice", proctune.DefaultZMQThreadSlice, "scheduler time slice of ZeroMQ's I/O threads (Linux 6.12+); 0: the kernel's default")
	fs.IntVar(&o.gcHeadroom, "gc-headroom", gctune.DefaultHeadroomMiB, "while updates stream, let the heap grow by what is allocated in a second, up to this many MiB, between garbage collections; 0: Go's default pacing; $GOGC overrides")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log every connection and subscription (debug level)")
	fs.BoolVarP(&o.debug, "debug", "d", false, "debug level with source file and line in every log record")
	fs.BoolVar(&o.checkConfig, "check-config", false, "check the flags and environment, print the effective settings and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.secretOnArgv = o.secretKey != ""
	switch {
	case o.secretKey != "":
	case o.secretFile != "":
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return o, fmt.Errorf("--secret-key-file: %w", err)
		}
		o.secretKey = strings.TrimSpace(string(b))
	default:
		o.secretKey = getenv(secretEnv)
	}
	for _, origin := range strings.Split(origins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			o.allowedOrigins = append(o.allowedOrigins, origin)
		}
	}
	o.urlPrefix = normalisePrefix(o.urlPrefix)
	if err := o.validate(); err != nil {
		return o, err
	}
	var err error
	if o.curve, err = o.curveFlags.Client(getenv); err != nil {
		return o, err
	}
	return o, o.curveFlags.CheckEndpoint("--zmqaddr", o.zmqAddr, o.curve)
}

func (o *options) validate() error {
	if o.secretKey == "" {
		return errors.New("--secret-key (or $" + secretEnv + ") is required: document-key lookups on the API are authenticated with it; use the same key as bokeh-server")
	}
	if o.wsPort < 0 || o.wsPort > 65535 {
		return fmt.Errorf("--ws-port %d: not a port number", o.wsPort)
	}
	if !strings.Contains(o.zmqAddr, "://") {
		return fmt.Errorf("--zmqaddr %q: want a ZeroMQ endpoint such as tcp://127.0.0.1:5555", o.zmqAddr)
	}
	u, err := url.Parse(o.apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--api-url %q: want an http(s) URL such as http://127.0.0.1:5006/", o.apiURL)
	}
	if !strings.HasSuffix(o.apiURL, "/") {
		o.apiURL += "/"
	}
	if o.zmqHWM < 1 {
		return fmt.Errorf("--zmq-hwm %d: must be at least 1", o.zmqHWM)
	}
	if o.maxConns < 0 {
		return fmt.Errorf("--max-connections %d: must not be negative", o.maxConns)
	}
	if o.maxQueueBytes <= 0 || o.pingInterval <= 0 || o.writeTimeout <= 0 || o.drainTimeout < 0 {
		return errors.New("--max-queue-bytes, --ping-interval and --write-timeout must be positive, --drain-timeout not negative")
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	return nil
}

// normalisePrefix gives a prefix a leading "/" and no trailing "/", and "" for none, as
// bokeh-server does with its --url-prefix.
func normalisePrefix(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return ""
	}
	return "/" + p
}
