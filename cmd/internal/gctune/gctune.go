// Package gctune paces the Go garbage collector of the server programs: streamed updates
// allocate tens of kilobytes per message while the live heap stays small, so with the default
// GOGC=100 the collector would run every few megabytes, dozens of times a second, and the
// memory it frees would be returned to the system and faulted back in for the next messages.
package gctune

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// DefaultHeadroomMiB bounds how far the heap may grow past the live data between
// collections unless --gc-headroom says otherwise: at most this much garbage, traded for far
// fewer collections while data streams through.
const DefaultHeadroomMiB = 64

// Interval is how often, at most, the collector should run while the program allocates
// fast: the headroom is what it allocates in that time (within the bound). A program that
// allocates slowly, such as a worker accepting idle connections, keeps Go's default pacing
// and so its memory use.
const Interval = 100 * time.Millisecond

const (
	liveMetric   = "/gc/heap/live:bytes"
	allocsMetric = "/gc/heap/allocs:bytes"
	// Below this live heap the percentage would be meaninglessly large.
	minLive = 1 << 20
	// GOGC never goes below Go's default (big heaps keep the usual 2x bound) nor above this.
	minPercent = 100
	maxPercent = 10000
)

// Start paces collections to about one per Interval while the program allocates fast:
// after each cycle it sets GOGC to max(100, room / live heap), where room is what the
// program allocated per Interval over the last cycle, at most headroom.
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

func start(headroom uint64, log *slog.Logger) *tuner {
	t := &tuner{headroom: headroom, log: log, percent: minPercent, last: time.Now(),
		sample: []metrics.Sample{{Name: liveMetric}, {Name: allocsMetric}}}
	metrics.Read(t.sample)
	if v := t.sample[1].Value; v.Kind() == metrics.KindUint64 {
		t.allocs = v.Uint64()
	}
	t.arm()
	return t
}

type tuner struct {
	headroom uint64
	log      *slog.Logger

	mu      sync.Mutex
	stopped bool
	percent int
	cycles  int // adjustments made, for tests
	sample  []metrics.Sample
	last    time.Time // previous adjustment
	allocs  uint64    // bytes allocated by then
}

func (t *tuner) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}

// sentinel is garbage as soon as it is armed; its cleanup runs after the collection that
// found it unreachable, i.e. once per GC cycle. It holds a pointer so that it is not a
// tiny allocation (those share blocks and may be freed much later).
type sentinel struct {
	_ *byte
	_ [2]uint64
}

func (t *tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

// adjust sets GOGC for the live heap the last cycle found; false once stopped.
func (t *tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.cycles++
	metrics.Read(t.sample)
	now := time.Now()
	live := uint64(minLive)
	if v := t.sample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > live {
		live = v.Uint64()
	}
	var allocs uint64
	if v := t.sample[1].Value; v.Kind() == metrics.KindUint64 {
		allocs = v.Uint64()
	}
	p := Percent(Room(allocs-t.allocs, now.Sub(t.last), t.headroom), live)
	t.allocs, t.last = allocs, now
	// Small changes are not worth recomputing the pacer for.
	if p != t.percent && (p*20 < t.percent*19 || p*20 > t.percent*21 || p == minPercent) {
		debug.SetGCPercent(p)
		t.log.Debug("GC pacing", "live_bytes", live, "gogc", p)
		t.percent = p
	}
	return true
}

// Room is the headroom for a program that allocated n bytes in d: what it allocates per
// Interval, at most limit.
func Room(n uint64, d time.Duration, limit uint64) uint64 {
	if d <= 0 {
		return limit
	}
	room := uint64(float64(n) * float64(Interval) / float64(d))
	return min(room, limit)
}

// Percent is the GOGC that lets a heap of live bytes grow by headroom before the next
// collection, within [100, 10000].
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
