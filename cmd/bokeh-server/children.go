package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
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

// prefixLines copies r to w line by line, each line prefixed, so children's logs are told apart.
func prefixLines(w io.Writer, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "%s%s\n", prefix, sc.Bytes())
	}
}

// startChild starts a program whose output goes to our stderr with a prefix. The returned
// channel yields its exit error once output is drained.
func startChild(prefix, bin string, args, env []string) (*exec.Cmd, <-chan error, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
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
		exited <- cmd.Wait()
	}()
	return cmd, exited, nil
}
