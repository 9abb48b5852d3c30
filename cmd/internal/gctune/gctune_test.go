package gctune

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"
)

func TestRoomAndPercent(t *testing.T) {
	const limit = 64 << 20
	for _, c := range []struct {
		allocated uint64
		in        time.Duration
		live      uint64
		want      int
	}{
		{40 << 20, time.Second, 4 << 20, 1000},           // streaming 40 MB/s: 40 MiB of room, a collection a second
		{240 << 20, time.Second, 4 << 20, 1600},          // faster than 64 MiB per Spacing: the bound
		{2 << 30, time.Second, 1 << 20, 6400},            // faster still, smaller live heap
		{2 << 30, time.Second, 1, 10000},                 // GOGC bounded above
		{2 << 20, time.Second, 8 << 20, 100},             // allocating slowly: Go's default pacing
		{240 << 20, time.Second, 1 << 30, 100},           // a big live heap keeps the default 2x bound
		{1 << 20, 0, 4 << 20, 1600},                      // no time elapsed: the bound
		{0, time.Hour, 4 << 20, 100},                     // idle
		{640 << 20, time.Second, 0, 10000},               // no division by zero
		{4 << 20, 100 * time.Millisecond, 16 << 20, 250}, // 40 MB/s seen over one Interval
	} {
		if got := Percent(Room(c.allocated, c.in, limit), c.live); got != c.want {
			t.Errorf("%d bytes in %v, live %d: GOGC %d, want %d", c.allocated, c.in, c.live, got, c.want)
		}
	}
}

var quietLog = slog.New(slog.DiscardHandler)

// withGOGC sets $GOGC to env and the collector's percentage to match (100 for ""), and
// restores the percentage when the test ends.
func withGOGC(t *testing.T, env string) {
	t.Setenv("GOGC", env)
	p := 100
	if env != "" {
		p, _ = strconv.Atoi(env)
	}
	old := debug.SetGCPercent(p)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// currentPercent reads GOGC without changing it.
func currentPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func (t *tuner) state() (percent, releases int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent, t.releases
}

var sink []byte

// stream allocates a 64 KiB block every 250 µs (256 MB/s) for d, as a worker receiving
// updates does, calling each (if not nil) after every block. Paced, not flat out: flat
// out, collections run back to back and what is allocated during marking counts as live.
func stream(d time.Duration, each func()) {
	start := time.Now()
	for n := 0; time.Since(start) < d; n++ {
		sink = make([]byte, 64<<10)
		if next := start.Add(time.Duration(n) * 250 * time.Microsecond); time.Until(next) > 0 {
			time.Sleep(time.Until(next))
		}
		if each != nil {
			each()
		}
	}
}

func TestStartFollowsTheAllocationRate(t *testing.T) {
	withGOGC(t, "")
	tu := start(64<<20, quietLog)
	defer tu.stop()
	// 256 MB/s is far more than 64 MiB per Spacing, against a small live heap: GOGC goes
	// well above 100 (to thousands; on a loaded machine the stream is slower, so only
	// "above 100" is asserted).
	stream(5*Interval, nil)
	if p := currentPercent(); p <= 100 {
		t.Fatalf("GOGC = %d after fast allocation with a small live heap", p)
	}
	// Quiet again: GOGC goes back to Go's default, and the burst's memory is collected and
	// returned once.
	deadline := time.Now().Add(5 * time.Second)
	for currentPercent() != 100 && time.Now().Before(deadline) {
		time.Sleep(Interval)
	}
	if p := currentPercent(); p != 100 {
		t.Fatalf("GOGC = %d after the program went quiet, want 100", p)
	}
	if _, releases := tu.state(); releases != 1 {
		t.Fatalf("%d releases after one burst, want 1", releases)
	}
	// Stopped, it changes nothing more.
	tu.stop()
	stream(3*Interval, nil)
	if p := currentPercent(); p != 100 {
		t.Fatalf("GOGC = %d after stop", p)
	}
}

func TestExplicitGOGCWins(t *testing.T) {
	withGOGC(t, "50")
	stop := Start(64<<20, quietLog)
	defer stop()
	stream(100*time.Millisecond, nil)
	runtime.GC()
	if p := currentPercent(); p != 50 {
		t.Fatalf("GOGC = %d with $GOGC=50 set", p)
	}
}

// With a live heap far below the runtime's 4 MiB heap minimum (this test's), the heap may
// still only grow by about the headroom: GOGC is computed for at least minLive, because Go's
// heap goal never falls below 4 MiB × GOGC/100. The percentage is what is asserted; the heap
// goal itself is only logged, because on a loaded machine what is allocated while marking
// counts as live and moves the goal by as much as the load pleases.
func TestHeapGoalStaysWithinHeadroom(t *testing.T) {
	withGOGC(t, "")
	runtime.GC()
	const headroom = 8 << 20
	tu := start(headroom, quietLog)
	defer tu.stop()
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	var highest uint64
	highestPercent := 0
	stream(10*Interval, func() {
		metrics.Read(goal)
		highest = max(highest, goal[0].Value.Uint64())
		highestPercent = max(highestPercent, currentPercent())
	})
	if highestPercent <= 100 {
		t.Fatal("GOGC never went above 100 under a 256 MB/s stream")
	}
	// Against a sub-MiB live heap, headroom/live would be GOGC 1000s: a 32 MiB heap goal.
	if want := headroom * 100 / minLive; highestPercent > want {
		t.Fatalf("GOGC reached %d with a %d MiB headroom; at most %d keeps the 4 MiB heap minimum's goal within the headroom",
			highestPercent, headroom>>20, want)
	}
	t.Logf("highest GOGC %d, highest heap goal %.1f MiB", highestPercent, float64(highest)/(1<<20))
}
