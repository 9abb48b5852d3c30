// Package gctune paces the Go garbage collector of the server programs: streamed updates
// allocate tens of kilobytes per message while the live heap stays small, so with the default
// GOGC=100 the collector would run every few megabytes, dozens of times a second, and the
// memory it frees would be returned to the system and faulted back in for the next messages.
package gctune

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// DefaultHeadroomMiB bounds how far the heap may grow past the live data between
// collections unless --gc-headroom says otherwise: at most this much garbage, traded for far
// fewer collections while data streams through.
const DefaultHeadroomMiB = 64

// Spacing is how often, at most, the collector should run while the program allocates
// fast: the headroom is what it allocates in that time (within the bound). Every cycle
// slows the requests it overlaps by a millisecond or so; at ten cycles a second, one push
// in a hundred was late by that much.
const Spacing = time.Second

// Interval is how often the tuner looks at the allocation rate.
const Interval = 100 * time.Millisecond

const (
	liveMetric    = "/gc/heap/live:bytes"
	stacksMetric  = "/gc/scan/stack:bytes"
	globalsMetric = "/gc/scan/globals:bytes"
	allocsMetric  = "/gc/heap/allocs:bytes"
	// The percentage is computed for at least this much live data: Go's heap goal never
	// falls below 4 MiB × GOGC/100 (the runtime's heap minimum), so for a smaller live heap
	// (a worker's is well under 1 MiB) GOGC = headroom/live would let the heap grow to
	// several times the headroom (256 MiB at the default 64, seen in GODEBUG=gctrace=1).
	minLive = 4 << 20
	// GOGC never goes below Go's default (big heaps keep the usual 2x bound) nor above this.
	minPercent = 100
	maxPercent = 10000
)

// Start paces collections to about one per Spacing while the program allocates fast: every
// Interval it sets GOGC to max(100, room / live heap), where room is what the program would
// allocate in Spacing at the last Interval's rate, at most headroom. When a burst ends (GOGC falls back to
// 100) it collects once and returns the freed memory to the system, so that a quiet
// program, such as a worker holding idle connections, does not keep a burst's garbage.
// It does nothing when headroom is 0 or $GOGC is set (the operator's explicit choice wins);
// GOMEMLIMIT, when set, still bounds the heap. stop ends the tuning.
func Start(headroom uint64, log *slog.Logger) (stop func()) {
	if headroom == 0 {
		return func() {}
	}
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GC pacing left to $GOGC", "GOGC", v)
		return func() {}
	}
	t := start(headroom, log)
	return t.stop
}

type tuner struct {
	headroom uint64
	log      *slog.Logger
	done     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}

	mu       sync.Mutex // guards what tests read
	percent  int
	releases int // collections at the end of a burst
	sample   []metrics.Sample
	allocs   uint64 // bytes allocated at the last look
	last     time.Time
}

func start(headroom uint64, log *slog.Logger) *tuner {
	t := &tuner{headroom: headroom, log: log, percent: minPercent, done: make(chan struct{}),
		exited: make(chan struct{}), sample: []metrics.Sample{{Name: liveMetric}, {Name: stacksMetric}, {Name: globalsMetric},
			{Name: allocsMetric}}}
	t.read()
	go t.run()
	return t
}

func (t *tuner) stop() {
	t.stopOnce.Do(func() { close(t.done) })
	<-t.exited
}

func (t *tuner) run() {
	defer close(t.exited)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.adjust()
		}
	}
}

// read samples the metrics; it returns what GOGC is a percentage of (the live heap, stacks
// and globals) and the bytes allocated since the previous read, and in how long.
func (t *tuner) read() (live, allocated uint64, in time.Duration) {
	metrics.Read(t.sample)
	now := time.Now()
	for _, s := range t.sample[:3] {
		if s.Value.Kind() == metrics.KindUint64 {
			live += s.Value.Uint64()
		}
	}
	live = max(live, minLive)
	var allocs uint64
	if v := t.sample[3].Value; v.Kind() == metrics.KindUint64 {
		allocs = v.Uint64()
	}
	allocated, in = allocs-t.allocs, now.Sub(t.last)
	t.allocs, t.last = allocs, now
	return live, allocated, in
}

// adjust sets GOGC for the last Interval's allocation rate.
func (t *tuner) adjust() {
	t.mu.Lock()
	defer t.mu.Unlock()
	live, allocated, in := t.read()
	p := Percent(Room(allocated, in, t.headroom), live)
	// Small changes are not worth recomputing the pacer for.
	if p == t.percent || (p != minPercent && p*20 >= t.percent*19 && p*20 <= t.percent*21) {
		return
	}
	debug.SetGCPercent(p)
	t.log.Debug("GC pacing", "live_bytes", live, "allocated_per_interval", allocated, "gogc", p)
	burstEnded := p == minPercent && t.percent > minPercent
	t.percent = p
	if burstEnded {
		debug.FreeOSMemory()
		t.releases++
		t.read() // the collection's own work is not the program's allocation
	}
}

// Room is the headroom for a program that allocated n bytes in d: what it allocates per
// Spacing, at most limit.
func Room(n uint64, d time.Duration, limit uint64) uint64 {
	if d <= 0 {
		return limit
	}
	room := uint64(float64(n) * float64(Spacing) / float64(d))
	return min(room, limit)
}

// Percent is the GOGC that lets a heap grow by headroom before the next collection, live
// being what GOGC is a percentage of (live heap, stacks, globals); within [100, 10000].
func Percent(headroom, live uint64) int {
	if live == 0 {
		live = 1
	}
	p := headroom * 100 / live
	if p < minPercent {
		return minPercent
	}
	if p > maxPercent {
		return maxPercent
	}
	return int(p)
}
