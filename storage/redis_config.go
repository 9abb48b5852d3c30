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

// RedisConfig says how to reach redis. The databases are fixed by the layout (models in
// db 2, records in db 3) and cannot be chosen.
type RedisConfig struct {
	Addr     string // host:port; DefaultRedisAddr if empty
	Username string // ACL user (redis 6+); empty for the default user
	Password string
	TLS      *tls.Config // nil for plain TCP
	// OverlayTTL is how long an overlay outlives its last write; DefaultOverlayTTL if <= 0.
	OverlayTTL time.Duration
	// DialTimeout bounds connecting, IOTimeout each read and write; 2 s if <= 0.
	DialTimeout, IOTimeout time.Duration
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
	return c
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
	return redis.IsLoadingError(err) ||
		redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) ||
		redis.IsClusterDownError(err) ||
		redis.IsMaxClientsError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}
