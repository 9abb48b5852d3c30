// Package cluster starts the real programs (bokeh-server, ws-worker, forwarder, redis) on
// free loopback ports for black-box tests, and talks to them like browsers do.
package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// Binaries are the programs under test.
type Binaries struct {
	Server string
	Worker string
	Bench  string // bokeh-bench, whose smoke test keeps it working
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build returns the programs: from $BOKEH_BIN_DIR when set (make test builds them once), else
// built once per test process into a temporary directory.
func Build(tb testing.TB) Binaries {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts the real programs: not with -short (make test runs it)")
	}
	buildOnce.Do(func() {
		if dir := os.Getenv("BOKEH_BIN_DIR"); dir != "" {
			built = binariesIn(dir)
			for _, p := range []string{built.Server, built.Worker, built.Bench} {
				if _, err := os.Stat(p); err != nil {
					buildErr = fmt.Errorf("BOKEH_BIN_DIR: %w (run make build)", err)
				}
			}
			return
		}
		dir, err := os.MkdirTemp("", "bokeh-bin-")
		if err != nil {
			buildErr = err
			return
		}
		root := moduleRoot()
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/bokeh-server", "./cmd/ws-worker", "./cmd/bokeh-bench")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = binariesIn(dir)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return built
}

func binariesIn(dir string) Binaries {
	return Binaries{Server: filepath.Join(dir, "bokeh-server"), Worker: filepath.Join(dir, "ws-worker"),
		Bench: filepath.Join(dir, "bokeh-bench")}
}

// moduleRoot is the repository root (this file lives in cmd/internal/cluster).
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// BuildDir returns a directory of the repository's build output (BokehJS, static files),
// honouring the environment variables make test sets.
func BuildDir(env, rel string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return filepath.Join(moduleRoot(), rel)
}

var portMu sync.Mutex

// FreePorts returns n consecutive free loopback TCP ports (workers of one bokeh-server use
// consecutive ports). Ports are only probed, so a race with another program is possible but
// unlikely in the high range used.
func FreePorts(tb testing.TB, n int) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for attempt := 0; attempt < 200; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok && !recentlyUsed(base, n) {
			return base
		}
	}
	tb.Fatalf("no %d consecutive free ports", n)
	return 0
}

// handedOut remembers ports given to earlier callers, which may not be bound yet.
var handedOut = map[int]bool{}

func recentlyUsed(base, n int) bool {
	for p := base; p < base+n; p++ {
		if handedOut[p] {
			return true
		}
	}
	for p := base; p < base+n; p++ {
		handedOut[p] = true
	}
	return false
}

// FreePort returns one free loopback port.
func FreePort(tb testing.TB) int { return FreePorts(tb, 1) }

// ZMQAddr returns a tcp:// address on a free loopback port.
func ZMQAddr(tb testing.TB) string { return "tcp://127.0.0.1:" + strconv.Itoa(FreePort(tb)) }
