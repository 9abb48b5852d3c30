package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
)

// spawner starts child processes that die with this process, even on SIGKILL. Linux
// delivers Pdeathsig when the *thread* that forked the child exits, and Go may retire
// threads; so every fork happens on one goroutine locked to a thread that never exits.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	theSpawner     *spawner
	theSpawnerOnce sync.Once
)

func getSpawner() *spawner {
	theSpawnerOnce.Do(func() {
		theSpawner = &spawner{reqs: make(chan spawnReq)}
		go theSpawner.loop()
	})
	return theSpawner
}

func (s *spawner) loop() {
	runtime.LockOSThread() // never unlocked: this thread lives as long as the process
	for r := range s.reqs {
		r.done <- r.cmd.Start()
	}
}

// start runs cmd as a child that receives SIGKILL when this process dies, in its own process
// group (so a terminal's Ctrl-C reaches only us, and we stop children in order).
func (s *spawner) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// prefixLines copies r to w line by line, each line prefixed, so children's logs are told
// apart. It returns only at the end of r: after a line too long to prefix, the rest is
// copied as is (a child must never block on a full pipe, and the end of r is how callers
// learn that the child is gone).
func prefixLines(w io.Writer, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "%s%s\n", prefix, sc.Bytes())
	}
	if sc.Err() != nil {
		fmt.Fprintf(w, "%s(line over 1 MiB; the rest of the output follows unprefixed)\n", prefix)
		_, _ = io.Copy(w, r)
	}
}

// secretEnv lists the variables of this process's environment that hold its own secrets:
// a child gets them only when the caller passes them on (workers get the secret key and
// keys of their own), never by inheritance (a managed redis needs none of them).
var secretEnv = []string{"BOKEH_SECRET_KEY", curvekeys.EnvSecret, curvekeys.EnvServerKey}

// childEnviron is this process's environment without secretEnv.
func childEnviron() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(secretEnv, name)
	})
}

// startChild starts a program whose output goes to our stderr with a prefix. The returned
// channel yields its exit error once output is drained.
func startChild(prefix, bin string, args, env []string) (*exec.Cmd, <-chan error, error) {
	return startChildNotify(prefix, bin, args, env, nil)
}

// startChildNotify is startChild that also calls outputClosed (if not nil) as soon as the
// child's output ends: when it exits, before it is reaped and before the exit error is
// sent. Callers use it to stop handing out a dead child without waiting for that.
func startChildNotify(prefix, bin string, args, env []string, outputClosed func()) (*exec.Cmd, <-chan error, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(childEnviron(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", bin, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := getSpawner().start(cmd); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() {
		prefixLines(os.Stderr, prefix, out)
		if outputClosed != nil {
			outputClosed()
		}
		exited <- cmd.Wait()
	}()
	return cmd, exited, nil
}
