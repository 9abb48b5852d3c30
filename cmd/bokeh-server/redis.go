package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/storage"
)

// redisReadyWait bounds how long a managed redis may take to answer PING (it replays its
// append-only file first, which takes a while for big datasets).
const redisReadyWait = 60 * time.Second

// The managed redis's files in DATA-DIR/redis, a directory only this user may enter.
const (
	managedRedisDir      = "redis"
	managedRedisConf     = "redis.conf"
	managedRedisPassword = "password" // made at the first start, kept for the next ones
)

// managedRedis is the redis-server child of --backend=redis --start-redis. It is restarted
// with backoff when it dies (the API answers 503 meanwhile and recovers by itself). It
// requires a password, which reaches it only in its configuration file.
type managedRedis struct {
	path, conf, addr string
	password         string
	port             int
	log              *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   <-chan error
	stopping atomic.Bool
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the supervisor has stopped
}

// managedRedisConfig is the generated configuration: loopback only, a password, data in
// dir, durable appends fsynced every second (the original's "save 10 1" snapshots could
// lose ten seconds). With set-proc-title off, its command line stays the one it was
// started with (program and configuration file), as ps and tests see it.
func managedRedisConfig(port int, dir, password string) string {
	return fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode yes
requirepass %s
set-proc-title no
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
`, port, storage.QuoteRedisConfig(password), storage.QuoteRedisConfig(dir))
}

// managedPassword returns the password kept in dir (managedRedisPassword), making a random
// one at the first start. Keeping it lets a restarted server, and operators (redis-cli),
// reach the same data; a dataset of a release without passwords is served as is, under
// the new password.
func managedPassword(dir string) (password string, made bool, err error) {
	path := filepath.Join(dir, managedRedisPassword)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := os.Chmod(path, 0o600); err != nil {
			return "", false, fmt.Errorf("managed redis password: %w", err)
		}
		if password = strings.TrimRight(string(b), "\r\n"); password == "" {
			return "", false, fmt.Errorf("managed redis password file %s is empty: delete it to make a new password", path)
		}
		return password, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("managed redis password: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	password = hex.EncodeToString(raw)
	if err := writePrivateFile(path, password+"\n"); err != nil {
		return "", false, fmt.Errorf("managed redis password: %w", err)
	}
	return password, true, nil
}

// writePrivateFile replaces path with content, readable by this user only, at once (a
// crash leaves the old file or the new one).
func writePrivateFile(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// privateDir makes dir (and its parents) if missing and lets only this user enter it.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
		log.Info("managed redis data dir made private", "dir", dir, "was", fmt.Sprintf("%#o", perm))
	}
	return nil
}

// startManagedRedis starts redis-server on 127.0.0.1:port with its files in
// DATA-DIR/redis. password is the one to require; empty means the one kept there.
func startManagedRedis(ctx context.Context, bin string, port int, dataDir, password string, log *slog.Logger) (*managedRedis, error) {
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
	dir, err := filepath.Abs(filepath.Join(dataDir, managedRedisDir))
	if err != nil {
		return nil, err
	}
	if err := privateDir(dir, log); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	passwordFrom := "--redis-password-file or $BOKEH_REDIS_PASSWORD"
	if password == "" {
		var made bool
		if password, made, err = managedPassword(dir); err != nil {
			return nil, err
		}
		passwordFrom = filepath.Join(dir, managedRedisPassword)
		if made {
			log.Info("managed redis: made a password", "file", passwordFrom)
		}
	}
	conf := filepath.Join(dir, managedRedisConf)
	if err := writePrivateFile(conf, managedRedisConfig(port, dir, password)); err != nil {
		return nil, fmt.Errorf("redis config: %w", err)
	}
	m := &managedRedis{path: path, conf: conf, addr: addr, password: password, port: port, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.start(); err != nil {
		return nil, err
	}
	if err := m.waitReady(ctx); err != nil {
		m.stopping.Store(true)
		m.kill()
		return nil, err
	}
	log.Info("managed redis started", "addr", addr, "dir", dir, "password_from", passwordFrom, "pid", m.pid())
	go m.supervise()
	return m, nil
}

func (m *managedRedis) start() error {
	cmd, exited, err := startChild(fmt.Sprintf("[redis :%d] ", m.port), m.path, []string{m.conf}, nil)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	return nil
}

func (m *managedRedis) current() (*exec.Cmd, <-chan error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd, m.exited
}

func (m *managedRedis) pid() int {
	cmd, _ := m.current()
	return cmd.Process.Pid
}

// kill ends a redis that failed to start (it may already have exited and been reaped).
func (m *managedRedis) kill() {
	cmd, exited := m.current()
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
}

// supervise restarts redis whenever it exits, until Stop.
func (m *managedRedis) supervise() {
	defer close(m.done)
	backoff := backoffFirst
	for {
		_, exited := m.current()
		started := time.Now()
		err := <-exited
		if m.stopping.Load() {
			return
		}
		if time.Since(started) > backoffReset {
			backoff = backoffFirst
		}
		m.log.Error("managed redis exited; restarting it", "err", err, "backoff", backoff)
		for !m.stopping.Load() {
			select {
			case <-m.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, backoffMax)
			if err := m.start(); err != nil {
				m.log.Error("restarting managed redis", "err", err)
				continue
			}
			m.log.Info("managed redis restarted", "pid", m.pid())
			break
		}
		if m.stopping.Load() {
			// Stop may have signalled the old process while this one was starting.
			cmd, exited := m.current()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
			}
			return
		}
	}
}

func (m *managedRedis) waitReady(ctx context.Context) error {
	client := redis.NewClient(&redis.Options{Addr: m.addr, Password: m.password, DialTimeout: time.Second, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, redisReadyWait)
	defer cancel()
	_, exited := m.current()
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case exitErr := <-exited:
			return fmt.Errorf("redis-server exited at start (%v); see its log lines above", exitErr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s not ready after %s: %w", m.addr, redisReadyWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts redis down cleanly (SIGTERM makes it flush its append-only file) and waits.
func (m *managedRedis) Stop() {
	if m == nil {
		return
	}
	m.stopping.Store(true)
	close(m.stop)
	cmd, _ := m.current()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-m.done
	}
	m.log.Info("managed redis stopped")
}

// redisClientLog sends go-redis's own messages (one per failed dial while redis is down) to
// debug level; the API already logs each refused request once as a warning.
type redisClientLog struct{ log *slog.Logger }

func (r redisClientLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Debug("redis client: " + fmt.Sprintf(format, v...))
}
