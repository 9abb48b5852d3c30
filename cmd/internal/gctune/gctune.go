// Package gctune paces the Go garbage collector of the server programs: streamed updates
// allocate tens of kilobytes per message while the live heap stays small, so with the default
// GOGC=100 the collector would run every few megabytes, hundreds of times a second.
package gctune

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultHeadroomMiB is how far the heap may grow past the live data between collections
// unless --gc-headroom says otherwise: a bounded amount of memory (at most this much garbage)
// traded for far fewer collections while data streams through.
const DefaultHeadroomMiB = 64

const (
	liveMetric = "/gc/heap/live:bytes"
	// Below this live heap the percentage would be meaninglessly large.
	minLive = 1 << 20
	// GOGC never goes below Go's default (big heaps keep the usual 2x bound) nor above this.
	minPercent = 100
	maxPercent = 10000
)

// Start makes every collection leave room for at least headroom bytes of new allocation
// before the next one: after each cycle it sets GOGC to max(100, headroom / live heap).
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
	t := &tuner{headroom: headroom, log: log, percent: minPercent,
		sample: []metrics.Sample{{Name: liveMetric}}}
	t.adjust()
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
	live := uint64(minLive)
	if s := t.sample[0]; s.Value.Kind() == metrics.KindUint64 && s.Value.Uint64() > live {
		live = s.Value.Uint64()
	}
	p := Percent(t.headroom, live)
	// Small changes are not worth recomputing the pacer for.
	if p != t.percent && (p*20 < t.percent*19 || p*20 > t.percent*21 || p == minPercent) {
		debug.SetGCPercent(p)
		t.log.Debug("GC pacing", "live_bytes", live, "gogc", p)
		t.percent = p
	}
	return true
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
