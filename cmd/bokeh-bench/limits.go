package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Cases of the limits scenario.
const (
	limZMQUpdate = "ZeroMQ, update frame"
	limZMQFanout = "ZeroMQ, fan-out frame"
)

func limBroadcast(s int) string { return fmt.Sprintf("broadcast S=%d", s) }

// child is a running limits process of this program.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	exited chan struct{}
}

// startChild runs this program's internal command pinned to the server CPUs; its stderr
// goes to a log in the run directory.
func (e *env) startChild(name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{name}, args...)...)
	logf, err := os.Create(e.l.dir + "/" + name + ".log")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var pinTo, restore []int
	if e.split.Pinned {
		pinTo, restore = e.split.Server, e.split.Client
	}
	if err := startPinned(cmd.Start, pinTo, restore); err != nil {
		logf.Close()
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout), exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(c.exited) }()
	return c, nil
}

// stop closes the child's stdin (it exits) and waits, killing it after stopWait.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(stopWait):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// limits is scenario 4: raw ZeroMQ for the same frames, then a raw broadcast to S
// connections for each S.
func (e *env) limits() error {
	var errs []string
	if err := e.zmqLimits(); err != nil {
		errs = append(errs, "zmq: "+err.Error())
	}
	for _, s := range e.o.subscribers {
		if err := e.broadcastLimit(s); err != nil {
			errs = append(errs, limBroadcast(s)+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (e *env) zmqLimits() error {
	e.log("limits: raw ZeroMQ PUB→SUB")
	c, err := e.startChild("internal-zmq", "--runs", strconv.Itoa(e.o.runs), "--duration", e.o.duration.String(),
		"--points", strconv.Itoa(e.o.points), "--frame-bytes", strconv.Itoa(e.o.frameBytes))
	if err != nil {
		return err
	}
	defer c.stop()
	var cases []zmqCase
	done := make(chan error, 1)
	go func() { done <- json.NewDecoder(c.stdout).Decode(&cases) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("internal-zmq: %w (log in %s)", err, e.l.dir)
		}
	case <-time.After(time.Duration(e.o.runs)*(2*e.o.duration+10*time.Second) + 30*time.Second):
		return fmt.Errorf("internal-zmq did not answer")
	}
	for _, zc := range cases {
		name := limZMQUpdate
		if zc.Key == "fanout" {
			name = limZMQFanout
		}
		r := e.rep.row("limits", name)
		r.note("%s: %s frames of %d bytes (topic, header and payload frames)", name, zc.Name, zc.Bytes)
		for i := range zc.Rate {
			r.set(figZMQRate, "/s", zc.Rate[i])
			r.set(figZMQ50, "ms", zc.P50[i])
			r.set(figZMQ99, "ms", zc.P99[i])
			r.set(figZMQ999, "ms", zc.P999[i])
		}
	}
	return nil
}

func (e *env) broadcastLimit(s int) error {
	// A document id of the workers' length, so that frames are the same size.
	c, err := e.startChild("internal-broadcast", "--frame-bytes", strconv.Itoa(e.o.frameBytes), "--docid", uuid.NewString())
	if err != nil {
		return err
	}
	defer c.stop()
	line, err := readLine(c.stdout, 10*time.Second)
	if err != nil {
		return err
	}
	var wsPort, ctlPort int
	if _, err := fmt.Sscanf(line, "listening %d %d", &wsPort, &ctlPort); err != nil {
		return fmt.Errorf("internal-broadcast said %q", line)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(wsPort)
	time.Sleep(300 * time.Millisecond)
	rss0, _ := rssKB(c.cmd.Process.Pid)
	e.log("limits: raw broadcast to %d websockets", s)
	subs, err := dialMany(s, []string{"ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/ws"}, "", "")
	if err != nil {
		return err
	}
	defer closeAll(subs)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, _ := httpInt(base + "/count"); n >= s {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broadcaster did not register %d connections", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rss1, _ := rssKB(c.cmd.Process.Pid)

	// One control connection per publisher, as each HTTP publisher has its own.
	const publishers = 4
	ctls := make([]*ctlConn, publishers)
	for i := range ctls {
		if ctls[i], err = dialCtl(ctlPort); err != nil {
			return err
		}
		defer ctls[i].close()
	}
	publish := func(pub int, buf []byte, seq uint64) ([]byte, error) { return buf, ctls[pub].publish(seq) }

	r := e.rep.row("limits", limBroadcast(s))
	seqs := &seqCounter{}
	seqs.next.Store(1)
	warm := phase{duration: min(300*time.Millisecond, e.o.duration), maxMsgs: 1000, publishers: 2, window: e.o.window,
		subs: subs, expect: s, publish: publish}
	warm.run(seqs)
	rate := e.o.fanoutRate / float64(s)
	for run := range e.o.runs {
		mx := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: 2, window: e.o.window,
			subs: subs, expect: s, publish: publish, servers: []int{c.cmd.Process.Pid}}
		res := mx.run(seqs)
		lat := r.record(maxRateFigures, &res, true)
		fx := phase{duration: e.o.duration, maxMsgs: e.o.maxMsgs, publishers: publishers, rate: rate,
			subs: subs, expect: s, publish: publish, servers: []int{c.cmd.Process.Pid}}
		resF := fx.run(seqs)
		latF := r.record(fixedRateFigures, &resF, true)
		if rss1 > 0 && rss0 > 0 {
			r.set(figIdleConn, "KB", float64(rss1-rss0)/float64(s))
		}
		e.log("limits: broadcast S=%d run %d: max %.0f deliveries/s (p99 %.2f ms); fixed %.0f/s (p99 %.2f ms)",
			s, run+1, res.deliveryRate(), lat[1], resF.deliveryRate(), latF[1])
	}
	return nil
}

// ctlConn is one publisher's connection to the raw broadcaster.
type ctlConn struct {
	c net.Conn
	r *bufio.Reader
	b []byte
}

func dialCtl(port int) (*ctlConn, error) {
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	return &ctlConn{c: c, r: bufio.NewReader(c)}, nil
}

func (c *ctlConn) publish(seq uint64) error {
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	c.b = append(strconv.AppendUint(c.b[:0], seq, 10), '\n')
	if _, err := c.c.Write(c.b); err != nil {
		return err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "ok\n" {
		return fmt.Errorf("broadcaster answered %q", line)
	}
	return nil
}

// command sends one command line and waits for its "ok".
func (c *ctlConn) command(line string) error {
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		return err
	}
	answer, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(answer) != "ok\n" {
		return fmt.Errorf("raw server answered %q to %q", answer, line)
	}
	return nil
}

func (c *ctlConn) close() { c.c.Close() }

func readLine(r *bufio.Reader, timeout time.Duration) (string, error) {
	ch := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := r.ReadString('\n')
		if err != nil {
			errc <- err
			return
		}
		ch <- l
	}()
	select {
	case l := <-ch:
		return l, nil
	case err := <-errc:
		return "", err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer within %v", timeout)
	}
}

func httpInt(u string) (int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// applyLimits sets every figure's limit and ratio from the limits scenario.
func (e *env) applyLimits() {
	rep := e.rep
	ratio := func(r *row, fig, limCase, limFig, limName string) {
		m := r.get(fig)
		if m == nil {
			return
		}
		lim := rep.median("limits", limCase, limFig)
		if math.IsNaN(lim) || lim == 0 {
			return
		}
		m.summarise()
		m.LimitName, m.Limit, m.Ratio = limName, lim, m.Median/lim
	}
	for _, r := range rep.Rows {
		switch r.Scenario {
		case "update":
			for _, f := range []string{figUpd1, figUpdN(e.o.writers)} {
				ratio(r, f, limZMQUpdate, figZMQRate, "zmq")
			}
			ratio(r, figLat50, limZMQUpdate, figZMQ50, "zmq")
			ratio(r, figLat99, limZMQUpdate, figZMQ99, "zmq")
			ratio(r, figLat999, limZMQUpdate, figZMQ999, "zmq")
		case "fanout":
			var s int
			fmt.Sscanf(r.Case, "S=%d", &s)
			lc := limBroadcast(s)
			for _, f := range []string{figMaxRate, figMax50, figMax99, figMax999, figFixRate, figFix50, figFix99, figFix999} {
				ratio(r, f, lc, f, "raw")
			}
		case "idle":
			var n int
			fmt.Sscanf(r.Case, "%d", &n)
			for _, f := range []string{figIdleConn} {
				ratio(r, f, limBroadcast(n), figIdleConn, "raw")
			}
		}
	}
}

// checkTargets compares the medians with the targets.
func (e *env) checkTargets() {
	rep := e.rep
	add := func(target string, v float64, unit string, ok func(float64) bool, how string) {
		t := targetResult{Target: target, Value: v}
		if math.IsNaN(v) {
			t.Missing = true
			t.Measured = "-"
		} else {
			t.Met = ok(v)
			t.Measured = format(v, unit)
			if how != "" {
				t.Measured += " (" + how + ")"
			}
		}
		rep.Targets = append(rep.Targets, t)
	}
	best := func(cas string) (float64, string) {
		a := rep.median("update", cas, figUpd1)
		b := rep.median("update", cas, figUpdN(e.o.writers))
		if math.IsNaN(b) || a >= b {
			return a, "1 writer"
		}
		return b, fmt.Sprintf("%d writers", e.o.writers)
	}
	v, how := best("memory")
	add("≥ 5,000 updates/s, memory", v, "/s", func(v float64) bool { return v >= 5000 }, how)
	v, how = best("redis")
	add("≥ 2,000 updates/s, redis", v, "/s", func(v float64) bool { return v >= 2000 }, how)
	add("push p50 ≤ 0.5 ms (1 subscriber, memory, 1 writer flat out)", rep.median("update", "memory", figLat50), "ms",
		func(v float64) bool { return v <= 0.5 }, "")
	add("push p99 ≤ 2 ms (1 subscriber, memory, 1 writer flat out)", rep.median("update", "memory", figLat99), "ms",
		func(v float64) bool { return v <= 2 }, "")
	paced := thousands(int64(e.o.updateRate)) + " updates/s"
	add("push p50 ≤ 0.5 ms (1 subscriber, memory, "+paced+")", rep.median("update", "memory", figPaced("p50", e.o.updateRate)), "ms",
		func(v float64) bool { return v <= 0.5 }, "")
	add("push p99 ≤ 2 ms (1 subscriber, memory, "+paced+")", rep.median("update", "memory", figPaced("p99", e.o.updateRate)), "ms",
		func(v float64) bool { return v <= 2 }, "")
	fc := fanoutCase(1000, 2)
	add("≥ 300,000 deliveries/s, S=1000 W=2", rep.median("fanout", fc, figMaxRate), "/s",
		func(v float64) bool { return v >= 300000 }, "")
	add(fmt.Sprintf("p99 ≤ 20 ms at %s deliveries/s, S=1000 W=2", thousands(int64(e.o.fanoutRate))),
		rep.median("fanout", fc, figFix99), "ms", func(v float64) bool { return v <= 20 }, "")
	ratioV := math.NaN()
	if r := rep.find("fanout", fc); r != nil {
		if m := r.get(figMaxRate); m != nil && m.Limit > 0 {
			ratioV = m.Ratio
		}
	}
	t := targetResult{Target: "fan-out ÷ raw broadcast ≥ 0.8, S=1000 W=2", Value: ratioV}
	if math.IsNaN(ratioV) {
		t.Missing, t.Measured = true, "-"
	} else {
		t.Met, t.Measured = ratioV >= 0.8, strconv.FormatFloat(ratioV, 'f', 2, 64)
	}
	rep.Targets = append(rep.Targets, t)
	for _, n := range e.o.idleConns {
		add(fmt.Sprintf("≤ 10 KB per idle websocket (%d conns)", n), rep.median("idle", strconv.Itoa(n)+" conns", figIdleConn), "KB",
			func(v float64) bool { return v <= 10 }, "")
	}
}
