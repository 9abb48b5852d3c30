package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// fleet is the scale scenarios' load generator: child processes of this program
// (fleetchild.go), each holding a share of the viewers on a loopback source address of its
// own.
type fleet struct {
	kids []*fleetKid
}

type fleetKid struct {
	src    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	exited chan struct{}
	mu     sync.Mutex
}

// fleetCallWait bounds one request to a child (dialing thousands of websockets included).
const fleetCallWait = 5 * time.Minute

// sourceAddr is the loopback source address of the i-th child: 127.0.0.2, 127.0.0.3, ...
func sourceAddr(i int) string { return fmt.Sprintf("127.0.%d.%d", (i+2)/250, (i+2)%250) }

// startFleet starts n children pinned to the load generator's CPUs.
func (e *env) startFleet(n int) (*fleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &fleet{}
	for i := range n {
		src := sourceAddr(i)
		cmd := exec.Command(exe, "internal-clients", "--src", src)
		cmd.Env = append(os.Environ(), profileEnv(fmt.Sprintf("internal-clients-%d", i))...)
		logf, err := os.Create(fmt.Sprintf("%s/internal-clients-%d.log", e.l.dir, i))
		if err != nil {
			f.close()
			return nil, err
		}
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			f.close()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			f.close()
			return nil, err
		}
		var pinTo, restore []int
		if e.split.Pinned {
			pinTo, restore = e.split.Client, e.split.Client
		}
		if err := startPinned(cmd.Start, pinTo, restore); err != nil {
			logf.Close()
			f.close()
			return nil, err
		}
		k := &fleetKid{src: src, cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20), exited: make(chan struct{})}
		go func() { cmd.Wait(); logf.Close(); close(k.exited) }()
		f.kids = append(f.kids, k)
	}
	return f, nil
}

// call sends req to one child and waits for its answer.
func (k *fleetKid) call(req fleetReq) (fleetResp, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return fleetResp{}, err
	}
	if _, err := k.stdin.Write(append(b, '\n')); err != nil {
		return fleetResp{}, fmt.Errorf("load generator %s: %w", k.src, err)
	}
	type answer struct {
		line []byte
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := k.out.ReadBytes('\n')
		ch <- answer{line, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			return fleetResp{}, fmt.Errorf("load generator %s: %w", k.src, a.err)
		}
		var resp fleetResp
		if err := json.Unmarshal(a.line, &resp); err != nil {
			return fleetResp{}, fmt.Errorf("load generator %s: %w", k.src, err)
		}
		if resp.Err != "" {
			return resp, fmt.Errorf("load generator %s: %s", k.src, resp.Err)
		}
		return resp, nil
	case <-time.After(fleetCallWait):
		k.cmd.Process.Kill() // the reader goroutine ends with the pipe
		return fleetResp{}, fmt.Errorf("load generator %s: no answer to %s within %v", k.src, req.Cmd, fleetCallWait)
	}
}

// all sends each child its request (reqOf(i)) at once and returns the answers in order.
func (f *fleet) all(reqOf func(i int) fleetReq) ([]fleetResp, error) {
	out := make([]fleetResp, len(f.kids))
	errs := make([]error, len(f.kids))
	var wg sync.WaitGroup
	for i, k := range f.kids {
		wg.Add(1)
		go func() { defer wg.Done(); out[i], errs[i] = k.call(reqOf(i)) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (f *fleet) same(req fleetReq) ([]fleetResp, error) {
	return f.all(func(int) fleetReq { return req })
}

// alive counts the open websockets of every child.
func (f *fleet) alive() (int, error) {
	rs, err := f.same(fleetReq{Cmd: "alive"})
	n := 0
	for _, r := range rs {
		n += r.Alive
	}
	return n, err
}

// cpu is the CPU time all children have used so far (from their last answers' view, read
// from /proc for precision).
func (f *fleet) cpu() time.Duration {
	var sum time.Duration
	for _, k := range f.kids {
		if d, err := cpuTime(k.cmd.Process.Pid); err == nil {
			sum += d
		}
	}
	return sum
}

func (f *fleet) pids() []int {
	out := make([]int, len(f.kids))
	for i, k := range f.kids {
		out[i] = k.cmd.Process.Pid
	}
	return out
}

// close ends every child: "close" makes it close its websockets, then its stdin ends it.
func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, k := range f.kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { k.call(fleetReq{Cmd: "close"}); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
			}
			k.stdin.Close()
			select {
			case <-k.exited:
			case <-time.After(stopWait):
				k.cmd.Process.Kill()
				<-k.exited
			}
		}()
	}
	wg.Wait()
}

// raiseFileLimit raises this process's soft open-files limit to the hard limit and returns
// the limit in force. Go raises it at start already, but gives children the original
// back unless the program set it itself (syscall.Setrlimit), as here: children inherit it.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return rl.Cur, err
	}
	return rl.Cur, nil
}

// kernelSetting reads a sysctl value from /proc/sys ("" when unreadable).
func kernelSetting(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return string(trimSpace(b))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func atoiOr(s string, def int) int {
	if v, err := strconv.Atoi(s); err == nil {
		return v
	}
	return def
}
