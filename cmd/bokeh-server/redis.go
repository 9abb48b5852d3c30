package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisReadyWait bounds how long a managed redis may take to answer PING (it replays its
// append-only file first, which takes a while for big datasets).
const redisReadyWait = 60 * time.Second

// managedRedis is the redis-server child of --backend=redis --start-redis.
type managedRedis struct {
	cmd    *exec.Cmd
	exited <-chan error
	log    *slog.Logger
}

// redisConfig is the generated configuration: loopback only, data in dir, durable appends
// fsynced every second (the original's "save 10 1" snapshots could lose ten seconds).
func redisConfig(port int, dir string) string {
	return fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode yes
daemonize no
databases 16
dir %s
dbfilename redis.db
save 10 1
appendonly yes
appendfsync everysec
appendfilename "bokeh.aof"
loglevel warning
logfile ""
`, port, strconv.Quote(dir))
}

func startManagedRedis(ctx context.Context, bin string, port int, dataDir string, log *slog.Logger) (*managedRedis, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("--start-redis: %q not found: install redis-server (make setup does) or run your own redis and pass --no-start-redis", bin)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("--start-redis: port %d is taken (another redis or bokeh-server?): use --redis-port, or --no-start-redis to use that redis: %w", port, err)
	} else {
		l.Close()
	}
	dir, err := filepath.Abs(filepath.Join(dataDir, "redis"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(redisConfig(port, dir)), 0o600); err != nil {
		return nil, fmt.Errorf("redis config: %w", err)
	}
	cmd, exited, err := startChild(fmt.Sprintf("[redis :%d] ", port), path, []string{conf}, nil)
	if err != nil {
		return nil, err
	}
	m := &managedRedis{cmd: cmd, exited: exited, log: log}
	if err := m.waitReady(ctx, addr); err != nil {
		m.Stop()
		return nil, err
	}
	log.Info("managed redis started", "addr", addr, "dir", dir, "pid", cmd.Process.Pid)
	return m, nil
}

func (m *managedRedis) waitReady(ctx context.Context, addr string) error {
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, redisReadyWait)
	defer cancel()
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case exitErr := <-m.exited:
			return fmt.Errorf("redis-server exited at start (%v); see its log lines above", exitErr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s not ready after %s: %w", addr, redisReadyWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts redis down cleanly (SIGTERM makes it flush its append-only file) and waits.
func (m *managedRedis) Stop() {
	if m == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.exited:
		if err != nil && !errors.Is(err, context.Canceled) {
			m.log.Debug("managed redis exit", "err", err)
		}
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.log.Info("managed redis stopped")
}

// redisClientLog sends go-redis's own messages (one per failed dial while redis is down) to
// debug level; the API already logs each refused request once as a warning.
type redisClientLog struct{ log *slog.Logger }

func (r redisClientLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Debug("redis client: " + fmt.Sprintf(format, v...))
}
