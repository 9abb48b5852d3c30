package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Environment variables that may hold redis passwords instead of files.
const (
	envRedisPassword    = "BOKEH_REDIS_PASSWORD"
	envSentinelPassword = "BOKEH_REDIS_SENTINEL_PASSWORD"
)

// redisSettings turns the redis flags into the backend's configuration, starting the managed
// redis when asked (the caller stops it; nil otherwise). Passwords come from files or the
// environment, so that none needs to be on a command line.
func redisSettings(ctx context.Context, o *options, log *slog.Logger) (storage.RedisConfig, *managedRedis, error) {
	var cfg storage.RedisConfig
	switch {
	case o.RedisURL != "":
		var err error
		if cfg, err = storage.RedisConfigFromURL(o.RedisURL); err != nil {
			return cfg, nil, err
		}
		if cfg.Password != "" {
			log.Warn("--redis-url holds a password, which any local user can read in /proc/<pid>/cmdline; give it with --redis-password-file or $" + envRedisPassword + " instead")
		}
	case len(o.RedisSentinels) > 0:
		cfg.SentinelAddrs, cfg.MasterName = o.RedisSentinels, o.RedisMaster
	default:
		cfg.Addr = net.JoinHostPort(o.RedisHost, strconv.Itoa(o.RedisPort))
	}
	password, err := secretFromFileOrEnv("--redis-password-file", o.RedisPasswordFile, envRedisPassword)
	if err != nil {
		return cfg, nil, err
	}
	if password != "" {
		if cfg.Password != "" {
			return cfg, nil, errors.New("two redis passwords: one in --redis-url, one from --redis-password-file or $" + envRedisPassword + "; keep one")
		}
		cfg.Password = password
	}
	if cfg.SentinelPassword, err = secretFromFileOrEnv("--redis-sentinel-password-file", o.SentinelPasswordFile, envSentinelPassword); err != nil {
		return cfg, nil, err
	}
	// Read: children (redis, workers) need not inherit them.
	_ = os.Unsetenv(envRedisPassword)
	_ = os.Unsetenv(envSentinelPassword)
	cfg.WaitReplicas, cfg.WaitTimeout = o.RedisWaitReplicas, o.RedisWaitTimeout
	cfg.OverlayTTL = o.OverlayTTL
	if !o.StartRedis {
		return cfg, nil, nil
	}
	managed, err := startManagedRedis(ctx, o.RedisBin, o.RedisPort, o.DataDir, cfg.Password, log)
	if err != nil {
		return cfg, nil, err
	}
	cfg.Addr, cfg.Password = managed.addr, managed.password
	return cfg, managed, nil
}

// secretFromFileOrEnv reads a secret from file (named by flag) if given, else from the
// environment variable env; "" when neither is set. A file's trailing newline is not part
// of the secret.
func secretFromFileOrEnv(flag, file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	secret := strings.TrimRight(string(b), "\r\n")
	if secret == "" {
		return "", fmt.Errorf("%s %s is empty", flag, file)
	}
	return secret, nil
}

// checkRedisHA checks the Sentinel and WAIT flags; sentinels is --redis-sentinel's value.
func (o *options) checkRedisHA(sentinels string, startRedisGiven bool) error {
	for _, a := range strings.Split(sentinels, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--redis-sentinel: %q is not host:port", a)
		}
		o.RedisSentinels = append(o.RedisSentinels, a)
	}
	switch {
	case len(o.RedisSentinels) > 0 && o.RedisURL != "":
		return errors.New("--redis-sentinel and --redis-url exclude each other: the sentinels say where the master is (give its password with --redis-password-file)")
	case len(o.RedisSentinels) > 0 && o.RedisMaster == "":
		return errors.New("--redis-sentinel needs --redis-master, the name the sentinels monitor the master by")
	case len(o.RedisSentinels) == 0 && o.RedisMaster != "":
		return errors.New("--redis-master needs --redis-sentinel, the sentinels to ask for that master")
	case len(o.RedisSentinels) > 0 && startRedisGiven && o.StartRedis:
		return errors.New("--start-redis and --redis-sentinel exclude each other: the managed redis has no replicas to fail over to")
	case o.RedisWaitReplicas < 0:
		return fmt.Errorf("--redis-wait-replicas %d: must be 0 (do not wait) or more", o.RedisWaitReplicas)
	case o.RedisWaitTimeout <= 0:
		return errors.New("--redis-wait-timeout must be positive")
	}
	if len(o.RedisSentinels) > 0 {
		o.StartRedis = false
	}
	if o.RedisWaitReplicas > 0 && o.StartRedis && o.Backend == storage.BackendRedis {
		return errors.New("--redis-wait-replicas needs a redis with replicas: the managed one (--start-redis) has none; use --no-start-redis or --redis-sentinel")
	}
	return nil
}
