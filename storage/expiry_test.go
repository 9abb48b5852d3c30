package storage_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// The embedded backends drop expired overlays on a later overlay write, so abandoned
// viewers' copies do not pile up.
func TestOverlaySweep(t *testing.T) {
	shelve := openShelve(t, filepath.Join(t.TempDir(), "bokeh.db"), time.Second)
	defer shelve.Close()
	for _, s := range []storage.Store{storage.NewMemory(time.Second), shelve} {
		clk := newFakeClock()
		storage.SetClock(s, clk.Now)
		for _, temp := range []string{"t1", "t2", "t3"} {
			put(t, s, storage.Scope{DocID: "d", Temp: temp}, model("Plot", "p", `{}`))
		}
		if n := storage.OverlayCount(s); n != 3 {
			t.Fatalf("%T: %d overlays, want 3", s, n)
		}
		clk.Advance(1500 * time.Millisecond)
		put(t, s, storage.Scope{DocID: "d", Temp: "t4"}, model("Plot", "p", `{}`))
		if n := storage.OverlayCount(s); n != 1 {
			t.Errorf("%T: %d overlays after the sweep, want 1", s, n)
		}
	}
}

// TestOverlayExpiryRealClock checks the embedded backends' default clock (the contract
// tests replace it).
func TestOverlayExpiryRealClock(t *testing.T) {
	const ttl = 100 * time.Millisecond
	shelve := openShelve(t, filepath.Join(t.TempDir(), "bokeh.db"), ttl)
	defer shelve.Close()
	for _, s := range []storage.Store{storage.NewMemory(ttl), shelve} {
		scope := storage.Scope{DocID: "d", Temp: "t"}
		put(t, s, scope, model("Plot", "p", `{}`))
		time.Sleep(ttl + 50*time.Millisecond)
		wantModels(t, s, scope)
	}
}
