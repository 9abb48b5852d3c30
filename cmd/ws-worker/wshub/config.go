// Package wshub is the websocket side of a worker: it accepts browser connections, checks
// their subscriptions (PROTOCOL.md §5.3), subscribes its ZeroMQ socket to exactly the topics
// its clients watch and fans each published message out to them (§5.4, §5.5).
package wshub

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Defaults of Config; every limit has a name so that operators and tests can find it.
const (
	DefaultMaxQueueBytes = 4 << 20 // per connection; a browser that far behind is gone
	DefaultWriteTimeout  = 10 * time.Second
	// DefaultPingInterval stays under the 30 to 60 s idle timeouts of common proxies.
	DefaultPingInterval = 25 * time.Second
	DefaultPongTimeout  = 20 * time.Second
	DefaultDrainTimeout = 2 * time.Second
	// DefaultSubscribeAckTimeout bounds how long a first subscription to a topic waits for
	// the publisher's acknowledgement before subscribesuccess is sent anyway. The wait is
	// normally one round trip to the publisher; it runs out only when none is reachable.
	DefaultSubscribeAckTimeout = 2 * time.Second

	// MaxInboundBytes bounds a client frame; a subscribe frame is about 150 bytes.
	MaxInboundBytes = 64 << 10
	// MaxTopicsPerClient bounds one connection's subscriptions (BokehJS makes two).
	MaxTopicsPerClient = 1024
	// closeGrace is how long a closing connection waits for the peer's close frame.
	closeGrace = time.Second
	// drainStep is the granularity at which Shutdown spreads closes over the drain window.
	drainStep = 10 * time.Millisecond
)

// Config configures a Hub.
type Config struct {
	// ZMQAddr is where the SUB socket connects: a bokeh-server's --zmqaddr or a forwarder's
	// output.
	ZMQAddr string
	// APIURL is the bokeh-server root URL (with its prefix) that answers doc-key lookups.
	APIURL string
	// SecretKey is the bokeh-server's secret; the internal token is derived from it.
	SecretKey string
	// AllowedOrigins lists accepted Origin headers (scheme://host[:port]); empty accepts
	// any origin, as the original did.
	AllowedOrigins []string

	MaxQueueBytes int
	// MaxConnections bounds open websockets and handshakes under way (0: no bound).
	// Beyond it a handshake is refused with 503 and Retry-After, before the process runs
	// out of open files, which would stall its accept loop for everyone.
	MaxConnections int
	WriteTimeout   time.Duration
	PingInterval   time.Duration
	PongTimeout    time.Duration
	// DrainTimeout spreads the closes of Shutdown; zero means the default, negative none.
	DrainTimeout time.Duration
	// SubscribeAckTimeout bounds the wait for a publisher's acknowledgement of a new
	// ZeroMQ subscription before subscribesuccess goes out; zero means the default,
	// negative no wait (best effort, messages published right after may be lost).
	SubscribeAckTimeout time.Duration

	// HWM is the ZeroMQ receive high-water mark in messages (0: broker.DefaultHWM); beyond
	// it the publisher drops messages for this worker, which then resyncs.
	HWM int
	// Curve, when enabled, makes the ZeroMQ socket a CURVE client (broker.Curve).
	Curve broker.Curve

	// NewSubscriber, when set, makes the hub's subscriber instead of a ZeroMQ one on
	// ZMQAddr: it is given the hub's delivery and loss callbacks (see broker.Subscriber).
	NewSubscriber func(deliver func([]broker.Message) bool, loss func(broker.Loss)) (Subscriber, error)

	// HTTPClient performs doc-key lookups; nil means a client with keyLookupTimeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.ZMQAddr == "" && c.NewSubscriber == nil {
		return c, errors.New("wshub: ZMQAddr is required")
	}
	if c.APIURL == "" {
		return c, errors.New("wshub: APIURL is required for doc-key lookups")
	}
	if c.SecretKey == "" {
		return c, errors.New("wshub: SecretKey is required for doc-key lookups")
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	switch {
	case c.DrainTimeout == 0:
		c.DrainTimeout = DefaultDrainTimeout
	case c.DrainTimeout < 0:
		c.DrainTimeout = 0
	}
	switch {
	case c.SubscribeAckTimeout == 0:
		c.SubscribeAckTimeout = DefaultSubscribeAckTimeout
	case c.SubscribeAckTimeout < 0:
		c.SubscribeAckTimeout = 0
	}
	if c.HWM <= 0 {
		c.HWM = broker.DefaultHWM
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: keyLookupTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	origins := make([]string, 0, len(c.AllowedOrigins))
	for _, o := range c.AllowedOrigins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			origins = append(origins, strings.ToLower(o))
		}
	}
	c.AllowedOrigins = origins
	return c, nil
}

// readTimeout is how long a connection may stay silent: one ping interval for the ping to
// go out plus the time its pong may take.
func (c Config) readTimeout() time.Duration { return c.PingInterval + c.PongTimeout }
