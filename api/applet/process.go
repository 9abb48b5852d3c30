package applet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// process is one run of the host: its pipes, its calls in flight and its output.
type process struct {
	cmd    *exec.Cmd
	output *tail
	exited chan struct{} // closed once the process was reaped
	waited error

	reqs  *os.File // our end of the request pipe (the host's fd 3)
	wmu   sync.Mutex
	w     *frameWriter
	hello chan frame // the first message

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan frame
	// abandoned are calls that outlived their limit while the host may still be running
	// them; threads is how many the host runs at once. When every thread is taken by one,
	// the host can do nothing more and is killed (and restarted).
	abandoned map[uint64]bool
	threads   int
	stuck     bool          // killed for that
	gone      chan struct{} // closed when the reply pipe ends: the host is dead or dying
	goneErr   error
}

func startProcess(o Options, args []string) (*process, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("applet host: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("applet host: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		repR.Close()
		repW.Close()
		return nil, fmt.Errorf("applet host: %w", err)
	}
	cmd := exec.Command(o.Python, args...)
	cmd.Env = append(append(os.Environ(), "PYTHONUNBUFFERED=1"), o.Env...)
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{reqR, repW} // fds 3 and 4
	err = o.Start(cmd)
	// The child has its copies; ours of its ends would keep the pipes open after it dies.
	reqR.Close()
	repW.Close()
	outW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		outR.Close()
		return nil, fmt.Errorf("applet host: start %s: %w", o.Python, err)
	}
	p := &process{
		cmd: cmd, output: &tail{max: outputTail}, exited: make(chan struct{}),
		reqs: reqW, w: newFrameWriter(reqW), hello: make(chan frame, 1),
		pending: map[uint64]chan frame{}, gone: make(chan struct{}),
		abandoned: map[uint64]bool{}, threads: o.Threads,
	}
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		p.output.copy(o.Output, o.Prefix, outR)
	}()
	go p.readReplies(repR)
	go func() {
		p.waited = cmd.Wait()
		// The last lines of a dying host are what a start-up error shows; a grandchild that
		// keeps the output open must not hold up the exit, though.
		select {
		case <-outputDone:
		case <-time.After(time.Second):
		}
		close(p.exited)
	}()
	return p, nil
}

// readReplies hands each reply to its caller until the host closes its end.
func (p *process) readReplies(r *os.File) {
	defer r.Close()
	fr := newFrameReader(r)
	first := true
	var err error
	for {
		var f frame
		if f, err = fr.read(); err != nil {
			break
		}
		if first {
			first = false
			p.hello <- f
			continue
		}
		var id struct {
			ID uint64 `json:"id"`
		}
		if err = json.Unmarshal(f.head, &id); err != nil {
			err = fmt.Errorf("reply header: %w", err)
			break
		}
		p.mu.Lock()
		ch := p.pending[id.ID]
		delete(p.pending, id.ID)
		delete(p.abandoned, id.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- f // buffered; a caller that gave up is no longer in pending
		}
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("the applet host exited")
	}
	p.mu.Lock()
	p.goneErr = err
	p.mu.Unlock()
	close(p.gone)
	if first {
		close(p.hello)
	}
	// A host that breaks the wire is of no use any more.
	p.kill()
}

// awaitHello waits for the host's first message: its routes, or why the script failed.
func (p *process) awaitHello(ctx context.Context) (Info, error) {
	var f frame
	var ok bool
	select {
	case f, ok = <-p.hello:
	case <-ctx.Done():
		return Info{}, fmt.Errorf("the applet host did not report within the start-up limit: %w", ctx.Err())
	}
	if !ok {
		<-p.exited
		return Info{}, fmt.Errorf("the applet host exited before it was ready (%v)", p.exitErr())
	}
	var hello struct {
		Info
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Hint  string `json:"hint"`
	}
	if err := json.Unmarshal(f.head, &hello); err != nil {
		return Info{}, fmt.Errorf("the applet host's first message is not JSON: %w", err)
	}
	if !hello.OK {
		if hello.Hint != "" {
			return Info{}, fmt.Errorf("%s; %s", hello.Error, hello.Hint)
		}
		return Info{}, errors.New(hello.Error)
	}
	return hello.Info, nil
}

// call sends one request and waits for its reply.
func (p *process) call(ctx context.Context, head map[string]any, payload []byte) (frame, error) {
	ch := make(chan frame, 1)
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.pending[id] = ch
	p.mu.Unlock()
	forget := func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}
	head["id"] = id
	p.wmu.Lock()
	err := p.w.write(head, payload)
	p.wmu.Unlock()
	if err != nil {
		forget()
		return frame{}, fmt.Errorf("%w: sending to the applet host: %v", ErrUnavailable, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-p.gone:
		forget()
		p.mu.Lock()
		err := p.goneErr
		p.mu.Unlock()
		return frame{}, fmt.Errorf("%w: %v during the call", ErrUnavailable, err)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.abandon(id)
		} else {
			forget() // the client went away; the call finishes soon enough
		}
		return frame{}, ctx.Err()
	}
}

// abandon drops a call that outlived its limit; it kills a host whose every thread is busy
// with such calls (callbacks that never return would otherwise starve all pages).
func (p *process) abandon(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, waiting := p.pending[id]; !waiting {
		return // answered meanwhile
	}
	delete(p.pending, id)
	p.abandoned[id] = true
	if len(p.abandoned) >= p.threads {
		p.stuck = true
		p.kill()
	}
}

func (p *process) wasStuck() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stuck
}

func (p *process) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

// shutdown closes the request pipe, which ends the host, and kills it after wait.
func (p *process) shutdown(wait time.Duration) {
	p.wmu.Lock()
	p.reqs.Close()
	p.wmu.Unlock()
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.kill()
		<-p.exited
	}
}

func (p *process) exitErr() error {
	select {
	case <-p.exited:
		if p.waited == nil {
			return errors.New("exit status 0")
		}
		return p.waited
	default:
		return errors.New("still running")
	}
}

// tail copies output line by line with a prefix and keeps the last lines.
type tail struct {
	max  int
	mu   sync.Mutex
	last []string
}

func (t *tail) copy(w io.Writer, prefix string, r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(w, "%s%s\n", prefix, line)
		t.mu.Lock()
		t.last = append(t.last, line)
		if len(t.last) > t.max {
			t.last = t.last[len(t.last)-t.max:]
		}
		t.mu.Unlock()
	}
	if sc.Err() != nil {
		fmt.Fprintf(w, "%s(line over 1 MiB; the rest of the output follows unprefixed)\n", prefix)
		_, _ = io.Copy(w, r)
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.last...)
}
