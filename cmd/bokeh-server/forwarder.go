package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
	"github.com/bokeh-go/bokeh-server/cmd/internal/proctune"
)

const forwarderUsage = `Usage: bokeh-server forwarder [flags]

Relays changes from N API processes (bokeh-server --zmq-connect --zmqaddr <in>) to M
websocket workers (ws-worker --zmqaddr <out>), passing every message unchanged.

Across machines, give it a CURVE key and the public keys of the workers (--zmq-curve-allow)
and of the API processes (--zmq-curve-allow-publishers) that may connect; every ZeroMQ
connection is then authenticated and encrypted, and anything else is refused. Make keys
with bokeh-server keygen.

Flags:
`

// runForwarder is the "forwarder" subcommand: an XSUB/XPUB proxy where several API processes
// publish and several workers subscribe.
func runForwarder(args []string) int {
	fs := pflag.NewFlagSet("bokeh-server forwarder", pflag.ContinueOnError)
	fs.SortFlags = false
	in := fs.String("in", "tcp://127.0.0.1:5556", "address API processes publish to (bokeh-server --zmqaddr A --zmq-connect)")
	out := fs.String("out", "tcp://127.0.0.1:5555", "address workers subscribe at (ws-worker --zmqaddr B)")
	var curve curvekeys.Flags
	curve.AddKey(fs)
	curve.AddAllow(fs, "workers")
	fs.StringVar(&curve.AllowPublishers, "zmq-curve-allow-publishers", "", "directory of the public keys (*.pub) of the API processes allowed to publish at --in, with --zmq-curve-key")
	mallocTune := fs.Bool("malloc-tuning", true, "keep freed C memory and serve ZeroMQ's message copies from the heap (glibc mallopt); false: glibc's defaults")
	slice := fs.Duration("zmq-thread-slice", proctune.DefaultZMQThreadSlice, "scheduler time slice of ZeroMQ's I/O threads (Linux 6.12+); 0: the kernel's default")
	format := fs.String("log-format", "text", "log format: text or json")
	debug := fs.BoolP("debug", "d", false, "debug logging")
	check := fs.Bool("check-config", false, "check the flags and keys, print the addresses and exit")
	fs.Usage = func() { fmt.Fprint(os.Stderr, forwarderUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bokeh-server forwarder:", err)
		return 2
	}
	opts, err := forwarderCurve(&curve, *in, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bokeh-server forwarder:", err)
		return 2
	}
	if *check {
		fmt.Printf("bokeh-server forwarder: configuration OK: in %s, out %s, CURVE %v\n", *in, *out, curve.KeyFile != "" || os.Getenv(curvekeys.EnvSecret) != "")
		return 0
	}
	log := newLogger(os.Stderr, *format, *debug)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *mallocTune {
		proctune.Malloc()
	}
	f, err := broker.NewForwarder(*in, *out, append(opts, broker.WithLogger(log))...)
	if err != nil {
		log.Error("forwarder failed", "err", err)
		return 1
	}
	if *slice > 0 {
		proctune.ZMQThreads(*slice, log)
	}
	log.Info("forwarder running", "in", *in, "out", *out, "curve", len(opts) > 0)
	if err := f.Run(ctx); err != nil {
		log.Error("forwarder stopped", "err", err)
		return 1
	}
	log.Info("forwarder stopped")
	return 0
}

// forwarderCurve reads the forwarder's keys: its output accepts the workers' keys, its
// input the API processes'. Without a key, both addresses must be loopback (or
// --zmq-insecure).
func forwarderCurve(f *curvekeys.Flags, in, out string) ([]broker.Option, error) {
	c, err := f.Server(os.Getenv)
	if err != nil {
		return nil, err
	}
	for flag, addr := range map[string]string{"--in": in, "--out": out} {
		if err := f.CheckEndpoint(flag, addr, c); err != nil {
			return nil, err
		}
	}
	if !c.Enabled() {
		if f.AllowPublishers != "" {
			return nil, errors.New("--zmq-curve-allow-publishers needs --zmq-curve-key")
		}
		return nil, nil
	}
	if f.AllowPublishers == "" {
		return nil, errors.New("--zmq-curve-key needs --zmq-curve-allow-publishers DIR too: the public keys of the API processes publishing at --in")
	}
	publishers, err := curvekeys.ReadAllowList(f.AllowPublishers)
	if err != nil {
		return nil, err
	}
	return []broker.Option{broker.WithCurve(c), broker.WithCurvePublishers(publishers)}, nil
}
