package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startBinary runs the built worker and waits for its startup log line.
func startBinary(t *testing.T, bin string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--ws-port", "0", "--zmqaddr", "tcp://127.0.0.1:1")
	cmd.Env = append(os.Environ(), append([]string{secretEnv + "=s"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for seen := false; sc.Scan(); { // read to the end, so the worker never blocks on its log
			if !seen && strings.Contains(sc.Text(), "ws-worker listening") {
				seen = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(waitLimit):
		t.Fatal("worker did not start")
	}
	return cmd
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(waitLimit):
		t.Fatal("worker did not exit")
		return -1
	}
}

func TestBinaryExits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ws-worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("SIGTERM", func(t *testing.T) {
		cmd := startBinary(t, bin)
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitExit(t, cmd); code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
	})
	t.Run("parent gone", func(t *testing.T) {
		// Our pid is the worker's parent; naming another one means the parent is gone.
		cmd := startBinary(t, bin, parentEnv+"=1")
		if code := waitExit(t, cmd); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	})
}
