package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Mode says whether a socket binds its address or connects to it.
type Mode int

const (
	// Bind listens at the address: a single bokeh-server publishing straight to its workers.
	Bind Mode = iota
	// Connect dials the address: API processes publishing into a forwarder's input.
	Connect
)

func (m Mode) String() string {
	if m == Connect {
		return "connect"
	}
	return "bind"
}

// Limits of the ZeroMQ transport.
const (
	// DefaultQueueSize bounds the messages waiting for a publisher's socket goroutine; beyond
	// it Publish drops rather than stall an HTTP handler.
	DefaultQueueSize = 8192
	// DefaultHWM is the per-peer high-water mark (messages) of every socket. ZeroMQ's own
	// default of 1000 drops bursts of small modelpushes too early.
	DefaultHWM = 10000
	// DefaultLinger bounds how long unsent messages are kept after Close.
	DefaultLinger = time.Second
	// zmtpHeartbeat and zmtpTimeout make every connection ping its peer and drop a peer
	// silent for zmtpTimeout, so that a vanished machine or link is noticed (a worker then
	// reconnects and resyncs) instead of TCP waiting on a dead connection for hours. The
	// timeout outlasts stalls such as a stopped process's seconds.
	zmtpHeartbeat = 2 * time.Second
	zmtpTimeout   = 10 * time.Second
	// DefaultConnectWait bounds how long NewZMQPublisher in Connect mode waits for the
	// forwarder to connect and subscribe.
	DefaultConnectWait = 2 * time.Second
	// MaxMessageBytes refuses absurd frames from a rogue peer instead of allocating them;
	// a real modelpush of a large plot is a few MiB.
	MaxMessageBytes = 256 << 20
	// recvBatch bounds how many messages a subscriber takes per wake-up, so control
	// requests are not starved by a flood.
	recvBatch = 256
	// yieldBytes is how much a subscriber delivers before it lets other goroutines (the
	// websocket writers) run, within one batch.
	yieldBytes = 512 << 10
	// backlogPause is how long a subscriber waits after a batch its receiver could not
	// write at once (WithBatchDelivery). A yield would not do: the Go scheduler does not
	// look for goroutines whose sockets became writable while another one is runnable.
	backlogPause = 100 * time.Microsecond
)

// ErrClosed is returned by operations on a closed Subscriber.
var ErrClosed = errors.New("broker: closed")

// Option tunes a publisher, subscriber or forwarder.
type Option func(*options)

type options struct {
	batch       func([]Message) bool
	loss        func(Loss)
	origin      string
	curve       Curve
	curveIn     []string
	queueSize   int
	hwm         int
	linger      time.Duration
	connectWait time.Duration
	log         *slog.Logger
}

// WithBatchDelivery makes a Subscriber hand over the messages it takes in one go (those
// that arrived while it was busy, in arrival order) in one call of deliver instead of one
// call each, so that a websocket worker can write them to a connection together. The slice
// is reused once deliver returns; the messages themselves may be kept. The callback given
// to NewSubscriber is then not used.
//
// deliver reports whether the receiver is backed up (it had to queue frames for goroutines
// that write them); the subscriber then pauses for backlogPause before it takes more, so
// that those goroutines, which may be waiting for their sockets, get to run.
func WithBatchDelivery(deliver func([]Message) (backlog bool)) Option {
	return func(o *options) { o.batch = deliver }
}

// WithOrigin names a publisher, stably across its restarts (bokeh-server uses its host
// and HTTP port): subscribers that see a new epoch of a known origin know the publisher
// restarted and may have lost its last changes (see wire.go). Without it, restarts are
// only recognised where subscribers reconnect.
func WithOrigin(name string) Option { return func(o *options) { o.origin = name } }

// WithLossHandler makes a Subscriber report changes it may have missed (see Loss); f is
// called from the subscriber's goroutine, after the messages received before the loss were
// delivered and before those after it, and must not block or call the Subscriber.
func WithLossHandler(f func(Loss)) Option { return func(o *options) { o.loss = f } }

// WithCurve makes the socket use CURVE (curve.go): a binding publisher or a forwarder's
// output is a server accepting c.Allow, a subscriber or a connecting publisher a client of
// c.ServerKey.
func WithCurve(c Curve) Option { return func(o *options) { o.curve = c } }

// WithCurvePublishers sets the public keys of the publishers a forwarder's input accepts
// (with WithCurve, which gives the forwarder's secret key and its output's allow-list).
func WithCurvePublishers(keys []string) Option { return func(o *options) { o.curveIn = keys } }

// WithQueueSize sets the publisher's in-process queue length (messages).
func WithQueueSize(n int) Option { return func(o *options) { o.queueSize = max(n, 1) } }

// WithHWM sets the ZeroMQ high-water mark (messages per peer).
func WithHWM(n int) Option { return func(o *options) { o.hwm = max(n, 1) } }

// WithLinger sets how long unsent messages survive Close.
func WithLinger(d time.Duration) Option { return func(o *options) { o.linger = max(d, 0) } }

// WithConnectWait sets how long NewZMQPublisher in Connect mode waits for its peer to
// subscribe; zero or less does not wait.
func WithConnectWait(d time.Duration) Option { return func(o *options) { o.connectWait = max(d, 0) } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func buildOptions(opts []Option) options {
	o := options{queueSize: DefaultQueueSize, hwm: DefaultHWM, linger: DefaultLinger,
		connectWait: DefaultConnectWait}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

// attach binds or connects sock; hint is appended to "address already in use" errors to
// tell the operator what probably holds the port.
func attach(sock *zmq.Socket, addr string, mode Mode, hint string) error {
	if mode == Connect {
		if err := sock.Connect(addr); err != nil {
			return fmt.Errorf("zmq connect %s: %w", addr, err)
		}
		return nil
	}
	if err := sock.Bind(addr); err != nil {
		if zmq.AsErrno(err) == zmq.EADDRINUSE {
			return fmt.Errorf("zmq bind %s: %w — %s", addr, err, hint)
		}
		return fmt.Errorf("zmq bind %s: %w", addr, err)
	}
	return nil
}

// newSocket creates a socket with the common limits applied.
func newSocket(typ zmq.Type, o options) (*zmq.Socket, error) {
	sock, err := zmq.NewSocket(typ)
	if err != nil {
		return nil, fmt.Errorf("zmq socket %s: %w", typ, err)
	}
	setters := []func() error{
		func() error { return sock.SetLinger(o.linger) },
		func() error { return sock.SetSndhwm(o.hwm) },
		func() error { return sock.SetRcvhwm(o.hwm) },
		func() error { return sock.SetMaxmsgsize(MaxMessageBytes) },
		func() error { return sock.SetHeartbeatIvl(zmtpHeartbeat) },
		func() error { return sock.SetHeartbeatTimeout(zmtpTimeout) },
		func() error { return sock.SetHeartbeatTtl(zmtpTimeout) },
	}
	for _, set := range setters {
		if err := set(); err != nil {
			sock.Close()
			return nil, fmt.Errorf("zmq socket %s options: %w", typ, err)
		}
	}
	return sock, nil
}

// boundEndpoint reports the address a socket actually listens at, resolving a "*" port.
func boundEndpoint(sock *zmq.Socket, addr string) string {
	if ep, err := sock.GetLastEndpoint(); err == nil && ep != "" {
		return ep
	}
	return addr
}

// LocalEndpoint reports whether a ZeroMQ endpoint can be reached from this machine only:
// ipc:// and inproc://, or tcp:// on a loopback address or localhost.
func LocalEndpoint(addr string) bool {
	scheme, rest, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
		return false
	case scheme == "ipc" || scheme == "inproc":
		return true
	case scheme != "tcp":
		return false
	}
	// A connecting socket may name its source first: tcp://source;host:port.
	if i := strings.LastIndexByte(rest, ';'); i >= 0 {
		rest = rest[i+1:]
	}
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// isAgain reports a non-blocking operation that would have blocked.
func isAgain(err error) bool { return zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) }

var inprocSeq atomic.Uint64

// inprocName returns a process-unique inproc endpoint for a control channel.
func inprocName(what string) string {
	return fmt.Sprintf("inproc://bokeh-%s-%d", what, inprocSeq.Add(1))
}
