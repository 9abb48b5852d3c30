package gctune

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		headroom, live uint64
		want           int
	}{
		{64 << 20, 1 << 20, 6400},  // small live heap: room for 64 MiB of garbage
		{64 << 20, 32 << 20, 200},  // medium: still 64 MiB
		{64 << 20, 1 << 30, 100},   // large heaps keep Go's default
		{64 << 20, 1, 10000},       // bounded above
		{64 << 20, 0, 10000},       // no division by zero
		{1 << 20, 100 << 20, 100},  // headroom smaller than the default's
		{96 << 20, 3 << 20, 3200},  // the API under the update benchmark
		{64 << 20, 640 << 20, 100}, // exactly the default
	} {
		if got := Percent(c.headroom, c.live); got != c.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", c.headroom, c.live, got, c.want)
		}
	}
}

// currentPercent reads GOGC without changing it.
func currentPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func (t *tuner) cycleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cycles
}

func TestStartFollowsEveryCollection(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(currentPercent())
	debug.SetGCPercent(100)
	tu := start(64<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The test binary's live heap is far below 64 MiB: GOGC goes well above 100 at once.
	if p := currentPercent(); p <= 1000 {
		t.Fatalf("GOGC = %d after Start with a small live heap", p)
	}
	// Every collection runs the tuner again (the sentinel re-arms itself).
	for want := 2; want <= 4; want++ {
		deadline := time.Now().Add(5 * time.Second)
		for tu.cycleCount() < want && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
		if n := tu.cycleCount(); n < want {
			t.Fatalf("tuner ran %d times, want %d after collections", n, want)
		}
	}
	tu.stop()
	n := tu.cycleCount()
	for range 3 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if m := tu.cycleCount(); m != n {
		t.Fatalf("tuner still running after stop: %d -> %d", n, m)
	}
}

func TestExplicitGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "50")
	defer debug.SetGCPercent(currentPercent())
	debug.SetGCPercent(50)
	stop := Start(64<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	runtime.GC()
	if p := currentPercent(); p != 50 {
		t.Fatalf("GOGC = %d with $GOGC=50 set", p)
	}
}
