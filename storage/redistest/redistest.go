// Package redistest runs a real redis-server for tests: miniredis is fast, but only the real
// server shows the exact wire behaviour, persistence and what a crash looks like.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// readyTimeout bounds the wait for a started server to answer PING.
const readyTimeout = 10 * time.Second

// Server is a redis-server child process listening on 127.0.0.1:Port with its files in Dir.
// Its settings are in the file Conf (never on its command line), which redis itself may
// rewrite (a sentinel reconfiguring it), and which a restart reads again.
type Server struct {
	Addr     string
	Port     int
	Dir      string
	Conf     string
	Password string // requirepass (and masterauth of a replica); "" for none

	bin       string
	aof       bool
	replicaOf *Server
	sentinel  string // sentinel mode: the configuration lines after the common ones

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
}

// Option configures Start.
type Option func(*Server)

// WithAOF turns on the append-only file, fsynced before each reply, so every acknowledged
// write survives Stop, Kill and Restart. (With everysec, a redis whose fsync stalls replies
// before writing, and a kill -9 then loses acknowledged writes: a property of redis, not of
// the server under test.)
func WithAOF() Option { return func(s *Server) { s.aof = true } }

// WithPassword makes the server require password (requirepass), and use it to
// authenticate to its master (masterauth).
func WithPassword(password string) Option { return func(s *Server) { s.Password = password } }

// WithReplicaOf makes the server a replica of master.
func WithReplicaOf(master *Server) Option { return func(s *Server) { s.replicaOf = master } }

// Start starts redis-server on a free port and waits until it answers PING. The server is
// killed when the test ends, whatever its outcome.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := newServer(tb, opts)
	s.launch(tb)
	return s
}

func newServer(tb testing.TB, opts []Option) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server is not installed (%v); run the project's set-up, scripts/setup.sh, which installs the Debian package redis-server", err)
	}
	s := &Server{bin: bin, Dir: tb.TempDir()}
	s.Conf = filepath.Join(s.Dir, "redis.conf")
	for _, o := range opts {
		o(s)
	}
	// Registered after TempDir, so it runs first: redis must be gone before its dir is.
	tb.Cleanup(s.Kill)
	return s
}

// launch writes the configuration for a free port and starts the server. Another process
// may take the port between our probe and redis binding it; so it retries.
func (s *Server) launch(tb testing.TB) {
	tb.Helper()
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := os.WriteFile(s.Conf, []byte(s.config()), 0o600); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		err = s.start()
		if err == nil {
			return
		}
		if attempt == 2 {
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// config is the server's configuration file.
func (s *Server) config() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("port %d", s.Port)
	line("bind 127.0.0.1")
	line("protected-mode yes")
	line("daemonize no")
	line("dir %s", storage.QuoteRedisConfig(s.Dir))
	line("loglevel warning")
	line(`logfile ""`)
	if s.Password != "" {
		line("requirepass %s", storage.QuoteRedisConfig(s.Password))
	}
	if s.sentinel != "" {
		b.WriteString(s.sentinel)
		return b.String()
	}
	line(`save ""`)
	if s.aof {
		line("appendonly yes")
		line("appendfsync always")
	} else {
		line("appendonly no")
	}
	// Replicas sync at once (the default waits 5 s for more replicas to share the transfer).
	line("repl-diskless-sync-delay 0")
	if s.Password != "" {
		line("masterauth %s", storage.QuoteRedisConfig(s.Password))
	}
	if s.replicaOf != nil {
		line("replicaof 127.0.0.1 %d", s.replicaOf.Port)
	}
	return b.String()
}

// Restart stops the server if it runs and starts it again on the same port, dir and
// configuration file, waiting until it answers PING (so with WithAOF the data is loaded when
// Restart returns).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
}

// Stop shuts the server down with SIGTERM (letting it flush its AOF) and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, like a crash, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Pid is the server's process id, 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(readyTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logPath := filepath.Join(s.Dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	args := []string{s.Conf}
	if s.sentinel != "" {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if err := waitReady(s.Addr, s.Password, done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on %s: %w; log:\n%s", s.Addr, err, tail(logPath))
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Log returns the end of the server's log.
func (s *Server) Log() string { return tail(filepath.Join(s.Dir, "redis.log")) }

// waitReady polls PING until redis answers PONG (not -LOADING), the process exits, or
// readyTimeout passes.
func waitReady(addr, password string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if ping(addr, password) == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited during start-up")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v", readyTimeout)
		}
	}
}

func ping(addr, password string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(conn)
	if password != "" {
		auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if _, err := conn.Write([]byte(auth)); err != nil {
			return err
		}
		if line, err := r.ReadString('\n'); err != nil {
			return err
		} else if strings.TrimSpace(line) != "+OK" {
			return fmt.Errorf("AUTH answered %q", strings.TrimSpace(line))
		}
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort asks the kernel for a port that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of the log file, for start-up failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const limit = 2000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}
