package main

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// phase is one timed measurement: publishers send sequence-numbered updates (back to back,
// at a fixed rate, or keeping a window of incomplete ones), subscribers record them.
type phase struct {
	duration   time.Duration
	maxMsgs    int     // count bound
	publishers int     // concurrent senders
	window     int     // > 0: at most window messages not yet received by every subscriber
	rate       float64 // > 0: messages per second, scheduled from the start (open loop)
	subs       []*subscriber
	expect     int // subscribers that receive each message
	// publish sends the update with sequence number seq from publisher pub (0 to
	// publishers-1); buf is that publisher's scratch buffer, returned for reuse.
	publish func(pub int, buf []byte, seq uint64) ([]byte, error)
	// servers are the process ids whose CPU use the phase reports (with this process's).
	servers []int
}

// phaseResult holds what a phase measured.
type phaseResult struct {
	lo       uint64
	sent     int     // messages published successfully
	errors   int     // failed publishes
	done     []int64 // clock when the HTTP answer of seq lo+i was read (0: not sent or failed)
	start    int64
	lastSend int64
	samples  []sample
	received int   // samples in the phase's range
	lastRecv int64 // clock of the last one
	stalls   int   // window waits given up (a message never completed)
	lost     int   // sent × expect − received, after the drain
	dead     int   // subscribers whose connection ended
	// serverCPU and clientCPU are the CPU time the servers and this process used, as a
	// fraction of the phase's wall time (1 = one CPU busy throughout).
	serverCPU, clientCPU float64
}

// seqCounter hands out sequence numbers across phases of one document.
type seqCounter struct{ next atomic.Uint64 }

// drainWait bounds how long a phase waits for the frames still in flight.
const drainWait = 3 * time.Second

// stallWait is how long a windowed publisher waits for a completion before it counts the
// oldest message as lost and goes on.
const stallWait = 500 * time.Millisecond

func (p *phase) run(seqs *seqCounter) phaseResult {
	lo := seqs.next.Load()
	tr := newTracker(p.expect, lo)
	for _, s := range p.subs {
		s.take()
		s.track.Store(tr)
	}
	res := phaseResult{lo: lo, done: make([]int64, p.maxMsgs)}
	var issued atomic.Int64
	var stalls atomic.Int64
	var errs atomic.Int64
	res.start = now()
	wall0, srv0, cli0 := time.Now(), cpuSum(p.servers), cpuSelf()
	deadline := time.Now().Add(p.duration)

	// next returns the index of the next message to send, or false when the phase is over.
	var next func() (int, bool)
	var schedule chan int
	switch {
	case p.rate > 0:
		schedule = make(chan int, p.maxMsgs)
		go func() {
			defer close(schedule)
			interval := time.Duration(float64(time.Second) / p.rate)
			start := time.Now()
			for k := 0; k < p.maxMsgs; {
				due := start.Add(time.Duration(k) * interval)
				if due.After(deadline) {
					return
				}
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				// Send every message due by now (sleeps overshoot).
				for ; k < p.maxMsgs && !start.Add(time.Duration(k)*interval).After(time.Now()); k++ {
					schedule <- k
				}
			}
		}()
		next = func() (int, bool) { k, ok := <-schedule; return k, ok }
	case p.window > 0:
		next = func() (int, bool) {
			waitStart := time.Now()
			for {
				if time.Now().After(deadline) {
					return 0, false
				}
				done := tr.completed.Load() + stalls.Load()
				if cur := issued.Load(); cur-done < int64(p.window) {
					if issued.CompareAndSwap(cur, cur+1) {
						if int(cur) >= p.maxMsgs {
							return 0, false
						}
						return int(cur), true
					}
					continue
				}
				select {
				case <-tr.signal:
					waitStart = time.Now()
				case <-time.After(20 * time.Millisecond):
					if time.Since(waitStart) > stallWait {
						stalls.Add(1)
						waitStart = time.Now()
					}
				}
			}
		}
	default:
		next = func() (int, bool) {
			if time.Now().After(deadline) {
				return 0, false
			}
			k := int(issued.Add(1) - 1)
			return k, k < p.maxMsgs
		}
	}

	var wg sync.WaitGroup
	var lastSend, tried atomic.Int64
	for pub := range p.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				k, ok := next()
				if !ok {
					return
				}
				for cur := tried.Load(); int64(k+1) > cur && !tried.CompareAndSwap(cur, int64(k+1)); cur = tried.Load() {
				}
				var err error
				buf, err = p.publish(pub, buf, lo+uint64(k))
				t := now()
				if err != nil {
					errs.Add(1)
					continue
				}
				res.done[k] = t
				if t > lastSend.Load() {
					lastSend.Store(t)
				}
			}
		}()
	}
	wg.Wait()
	if schedule != nil {
		for range schedule { // the scheduler may still be blocked on a full channel
		}
	}
	res.lastSend = lastSend.Load()
	res.errors = int(errs.Load())
	sentUpTo := 0
	for k, t := range res.done {
		if t != 0 {
			res.sent++
			sentUpTo = k + 1
		}
	}
	res.done = res.done[:sentUpTo]
	// Past every number tried: a failed request may still have been published.
	seqs.next.Store(lo + uint64(max(int64(sentUpTo), tried.Load())))

	// Drain: wait for every delivery, for at most drainWait.
	want := int64(res.sent * p.expect)
	drainEnd := time.Now().Add(drainWait)
	for tr.received.Load() < want && time.Now().Before(drainEnd) {
		time.Sleep(time.Millisecond)
	}
	if wall := time.Since(wall0); wall > 0 {
		res.serverCPU = float64(cpuSum(p.servers)-srv0) / float64(wall)
		res.clientCPU = float64(cpuSelf()-cli0) / float64(wall)
	}
	for _, s := range p.subs {
		s.track.Store(nil)
		if !s.alive() {
			res.dead++
		}
	}
	hi := lo + uint64(len(res.done))
	for _, s := range p.subs {
		for _, sm := range s.take() {
			if sm.seq >= lo && sm.seq < hi {
				res.samples = append(res.samples, sm)
				res.received++
				res.lastRecv = max(res.lastRecv, sm.recv)
			}
		}
	}
	res.lost = max(res.sent*p.expect-res.received, 0)
	res.stalls = int(stalls.Load())
	return res
}

// latencies are HTTP-done → receive for every delivery whose publish succeeded (ns). A
// frame can arrive before its HTTP answer is read: the API publishes before it answers.
func (r *phaseResult) latencies() []int64 {
	out := make([]int64, 0, len(r.samples))
	for _, s := range r.samples {
		if d := r.done[s.seq-r.lo]; d != 0 {
			out = append(out, s.recv-d)
		}
	}
	return out
}

// sendRate is messages published per second of the sending period.
func (r *phaseResult) sendRate() float64 {
	if r.sent == 0 || r.lastSend <= r.start {
		return 0
	}
	return float64(r.sent) / (float64(r.lastSend-r.start) / 1e9)
}

// deliveryRate is frames received per second, from the first send to the last receive.
func (r *phaseResult) deliveryRate() float64 {
	if r.received == 0 || r.lastRecv <= r.start {
		return 0
	}
	return float64(r.received) / (float64(r.lastRecv-r.start) / 1e9)
}

// cpuSum is the CPU time used so far by pids (those that can be read).
func cpuSum(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if d, err := cpuTime(pid); err == nil {
			sum += d
		}
	}
	return sum
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phaseFigures names the figures a fan-out phase of one kind (maximum or fixed rate) records.
type phaseFigures struct{ rate, p50, p99, p999, drops, serverCPU, clientCPU string }

var (
	maxRateFigures   = phaseFigures{figMaxRate, figMax50, figMax99, figMax999, figMaxDrop, figSrvCPU, figCliCPU}
	fixedRateFigures = phaseFigures{figFixRate, figFix50, figFix99, figFix999, figFixDrop, figSrvCPUFix, figCliCPUFix}
)

// record adds one run of a fan-out phase to r and returns its latency p50, p99 and p999;
// serverCPU says whether the servers' CPU use is known (not when attached).
func (r *row) record(f phaseFigures, res *phaseResult, serverCPU bool) []float64 {
	lat := percentiles(res.latencies(), 50, 99, 99.9)
	r.set(f.rate, "/s", res.deliveryRate())
	r.set(f.p50, "ms", lat[0])
	r.set(f.p99, "ms", lat[1])
	r.set(f.p999, "ms", lat[2])
	r.set(f.drops, "count", float64(res.lost))
	if serverCPU {
		r.set(f.serverCPU, "%", 100*res.serverCPU)
	}
	r.set(f.clientCPU, "%", 100*res.clientCPU)
	return lat
}
