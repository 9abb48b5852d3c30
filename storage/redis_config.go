package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultRedisAddr is where the original server looked for redis (--redis-port 7001).
const DefaultRedisAddr = "127.0.0.1:7001"

// defaultRedisTimeout keeps a dead or hung redis from holding a request for long: requests
// fail with ErrUnavailable within a few seconds and go-redis reconnects later by itself.
const defaultRedisTimeout = 2 * time.Second

// DefaultRedisWaitTimeout is how long a write waits for its replicas (RedisConfig.WaitReplicas)
// before it is refused: long enough for a replica busy with a large write, short enough that a
// request does not hang when a replica is gone.
const DefaultRedisWaitTimeout = time.Second

// RedisConfig says how to reach redis. The databases are fixed by the layout (models in
// db 2, records in db 3) and cannot be chosen.
type RedisConfig struct {
	Addr     string // host:port; DefaultRedisAddr if empty
	Username string // ACL user (redis 6+); empty for the default user
	Password string
	TLS      *tls.Config // nil for plain TCP

	// SentinelAddrs (host:port), when set, replace Addr: the master is the one the Redis
	// Sentinels report for MasterName, followed through failovers. SentinelPassword is the
	// sentinels' own requirepass (Password stays the master's and replicas').
	SentinelAddrs    []string
	MasterName       string
	SentinelPassword string

	// WaitReplicas > 0 acknowledges a write only once that many replicas confirm they have
	// it (redis WAIT), so that a failover cannot lose it. A write they do not confirm within
	// WaitTimeout (DefaultRedisWaitTimeout if <= 0) fails with ErrUnavailable; it is complete
	// on the master and may or may not survive a failover.
	WaitReplicas int
	WaitTimeout  time.Duration

	// OverlayTTL is how long an overlay outlives its last write; DefaultOverlayTTL if <= 0.
	OverlayTTL time.Duration
	// DialTimeout bounds connecting, IOTimeout each read and write; 2 s if <= 0.
	DialTimeout, IOTimeout time.Duration
}

// usesSentinel reports whether the master is found through Redis Sentinel.
func (c RedisConfig) usesSentinel() bool { return len(c.SentinelAddrs) > 0 }

// describe names the redis in error messages: its address, or the master and sentinels.
func (c RedisConfig) describe() string {
	if c.usesSentinel() {
		return fmt.Sprintf("master %q of sentinels %s", c.MasterName, strings.Join(c.SentinelAddrs, ","))
	}
	return c.Addr
}

// withDefaults fills in the zero fields.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.Addr == "" {
		c.Addr = DefaultRedisAddr
	}
	if c.OverlayTTL <= 0 {
		c.OverlayTTL = DefaultOverlayTTL
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultRedisTimeout
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = defaultRedisTimeout
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultRedisWaitTimeout
	}
	return c
}

// check refuses configurations that cannot work.
func (c RedisConfig) check() error {
	switch {
	case c.usesSentinel() && c.MasterName == "":
		return errors.New("redis: sentinels given without a master name")
	case c.WaitReplicas < 0:
		return fmt.Errorf("redis: %d replicas to wait for", c.WaitReplicas)
	}
	for _, a := range c.SentinelAddrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("redis: sentinel address %q: want host:port", a)
		}
	}
	return nil
}

// newClient returns a client of database db: a plain one, or a failover client that asks
// the sentinels where the master is whenever it connects and drops its connections to a
// former master as soon as a sentinel announces the switch.
func (c RedisConfig) newClient(db int) *redis.Client {
	o := c.options(db)
	if !c.usesSentinel() {
		return redis.NewClient(o)
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       c.MasterName,
		SentinelAddrs:    c.SentinelAddrs,
		SentinelPassword: c.SentinelPassword,
		Username:         o.Username,
		Password:         o.Password,
		TLSConfig:        o.TLSConfig,
		DB:               o.DB,
		Protocol:         o.Protocol,
		DisableIdentity:  o.DisableIdentity,

		MaxRetries:            o.MaxRetries,
		DialerRetries:         o.DialerRetries,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		PoolTimeout:           o.PoolTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
	})
}

// options returns the go-redis options for database db.
func (c RedisConfig) options(db int) *redis.Options {
	return &redis.Options{
		Addr:      c.Addr,
		Username:  c.Username,
		Password:  c.Password,
		TLSConfig: c.TLS,
		DB:        db,
		// RESP2 works with every redis the original could have used; nothing here needs
		// RESP3 push messages, and without them go-redis skips its maintenance handshake.
		Protocol:                 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		DisableIdentity:          true,
		// Few retries and short timeouts: a dead redis must fail a request in seconds.
		MaxRetries:            1,
		DialerRetries:         1,
		DialTimeout:           c.DialTimeout,
		ReadTimeout:           c.IOTimeout,
		WriteTimeout:          c.IOTimeout,
		PoolTimeout:           c.IOTimeout,
		ContextTimeoutEnabled: true,
	}
}

// RedisConfigFromURL parses redis://[user[:password]@]host[:port] and its TLS form rediss://.
// The port defaults to 6379 as for any redis URL. A database number (/N) is refused: the
// original's layout fixes the databases, and silently ignoring it would hide the data.
func RedisConfigFromURL(rawURL string) (RedisConfig, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return RedisConfig{}, fmt.Errorf("redis URL: %w", err)
	}
	var cfg RedisConfig
	switch u.Scheme {
	case "redis":
	case "rediss":
		cfg.TLS = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	default:
		return RedisConfig{}, fmt.Errorf("redis URL %s: scheme must be redis:// or rediss://", u.Redacted())
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return RedisConfig{}, fmt.Errorf("redis URL %s: no host (want redis://host:port)", u.Redacted())
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		return RedisConfig{}, fmt.Errorf("redis URL %s: selects database %q, but bokeh-server always uses db 2 (models) and db 3 (records) as the original did; remove the path",
			u.Redacted(), db)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return RedisConfig{}, fmt.Errorf("redis URL %s: query and fragment are not supported", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	cfg.Addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	return cfg, nil
}

// redisUnavailable reports whether err means redis cannot serve right now (down, unreachable,
// slow, still loading) as opposed to a bug or a misconfiguration (bad password, wrong type).
func redisUnavailable(err error) bool {
	var netErr net.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return true
	}
	// A failover shows as READONLY (a demoted master still connected) and NOREPLICAS
	// (min-replicas-to-write) besides dead connections.
	return errors.Is(err, errNotReplicated) ||
		redis.IsLoadingError(err) ||
		redis.IsReadOnlyError(err) ||
		redis.IsNoReplicasError(err) ||
		redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) ||
		redis.IsClusterDownError(err) ||
		redis.IsMaxClientsError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}

// QuoteRedisConfig spells v as a double-quoted string of redis's configuration-file syntax,
// which reads \xHH, \" and \\ escapes: for passwords and paths in generated redis.conf files.
func QuoteRedisConfig(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
