package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Limits of process handling in tests.
const (
	stopWait  = 15 * time.Second
	readyWait = 30 * time.Second
)

// Proc is one started program; its output goes to a log file shown when the test fails.
type Proc struct {
	Name    string
	Bin     string
	Args    []string
	Env     []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// StartProc runs bin and stops it when the test ends.
func StartProc(tb testing.TB, name, bin string, args, env []string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Bin: bin, Args: args, Env: env,
		logPath: filepath.Join(tb.TempDir(), strings.ReplaceAll(name, " ", "_")+".log")}
	p.start(tb)
	tb.Cleanup(func() {
		p.Stop(tb)
		if tb.Failed() {
			tb.Logf("---- log of %s ----\n%s", p.Name, tail(p.Log(), 60))
		}
	})
	return p
}

func (p *Proc) start(tb testing.TB) {
	tb.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies, its servers must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", p.Name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(exited)
	}()
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the process is still alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the process ends, and its exit error after that.
func (p *Proc) Exited() (<-chan struct{}, func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, func() error { p.mu.Lock(); defer p.mu.Unlock(); return p.waitErr }
}

// Signal sends sig and waits for the exit, killing after stopWait.
func (p *Proc) signalAndWait(tb testing.TB, sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(stopWait):
		tb.Errorf("%s did not exit %s after %v; killing it", p.Name, sig, stopWait)
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Stop ends the process gracefully (SIGTERM).
func (p *Proc) Stop(tb testing.TB) { p.signalAndWait(tb, syscall.SIGTERM) }

// Kill ends the process with SIGKILL, like kill -9.
func (p *Proc) Kill(tb testing.TB) { p.signalAndWait(tb, syscall.SIGKILL) }

// Restart starts the same program again (after Stop or Kill).
func (p *Proc) Restart(tb testing.TB) {
	tb.Helper()
	if p.Running() {
		p.Stop(tb)
	}
	p.start(tb)
}

// ExitError is the error of the last run's exit (nil while running or on success).
func (p *Proc) ExitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Log returns everything the process printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// WaitHTTP polls url until it answers 200, failing the test after readyWait.
func WaitHTTP(tb testing.TB, p *Proc, url string) {
	tb.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyWait)
	var last string
	for time.Now().Before(deadline) {
		if p != nil && !p.Running() {
			tb.Fatalf("%s exited (%v) before %s answered:\n%s", p.Name, p.ExitError(), url, tail(p.Log(), 40))
		}
		resp, err := client.Get(url)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("status %d: %.200s", resp.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s not ready after %v (%s)", url, readyWait, last)
}

// ChildPids lists the live children of pid (from /proc).
func ChildPids(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var child int
		if _, err := fmt.Sscanf(e.Name(), "%d", &child); err != nil {
			continue
		}
		if ppid, state, ok := procStat(child); ok && ppid == pid && state != "Z" {
			out = append(out, child)
		}
	}
	return out
}

// Alive reports whether pid names a live (non-zombie) process.
func Alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// The command name is in parentheses and may contain spaces; fields follow the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	var st string
	if _, err := fmt.Sscanf(s[i+2:], "%s %d", &st, &ppid); err != nil {
		return 0, "", false
	}
	return ppid, st, true
}

// ErrNotRunning is reported when an operation needs a running process.
var ErrNotRunning = errors.New("process not running")
