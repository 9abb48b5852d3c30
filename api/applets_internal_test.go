package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEchoPath(t *testing.T) {
	for _, c := range []struct {
		rule, path string
		slash      bool
	}{
		{"/bokeh/sliders/", "/bokeh/sliders/", true},
		{"/bokeh/sliders", "/bokeh/sliders", false},
		{"/bokeh/stocks/<ticker>/", "/bokeh/stocks/:ticker/", true},
		{"/bokeh/n/<int:n>/<float(signed=True):f>", "/bokeh/n/:n/:f", false},
		{"/bokeh/item-<any(a, b):kind>/x", "/bokeh/:kind/x", false},
		{"/bokeh/files/<path:rest>", "/bokeh/files/*", false},
	} {
		path, slash := echoPath(c.rule)
		if path != c.path || slash != c.slash {
			t.Errorf("echoPath(%q) = %q, %v; want %q, %v", c.rule, path, slash, c.path, c.slash)
		}
	}
	if a, b := routeShape("/bokeh/doc/:docid/"), routeShape("/bokeh/doc/:x/"); a != b {
		t.Errorf("routeShape: %q != %q", a, b)
	}
}

// waiters of one name get the lock in the order they asked for it; other names never wait.
func TestFIFOLocks(t *testing.T) {
	f := newFIFOLocks()
	ctx := context.Background()
	unlock, err := f.lock(ctx, "page")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	order := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			u, err := f.lock(ctx, "page")
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			u()
		}()
		// The next waiter asks only once this one is queued.
		waitQueued(t, f, "page", i+2)
	}
	other, err := f.lock(ctx, "other page")
	if err != nil {
		t.Fatal(err)
	}
	other()
	// A waiter that gives up leaves the queue without taking a turn.
	gaveUp, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := f.lock(gaveUp, "page"); done <- err }()
	waitQueued(t, f, "page", n+2)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v", err)
	}
	unlock()
	for i := 0; i < n; i++ {
		if got := <-order; got != i {
			t.Fatalf("waiter %d got the lock in turn %d", got, i)
		}
	}
	waitQueued(t, f, "page", 0)
}

func waitQueued(t *testing.T, f *fifoLocks, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.queues[name])
		f.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %q holds %d, want %d", name, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// appletModels: every model's attributes end in its id and the real docid, whatever the
// host wrote there, and the push carries exactly the stored text.
func TestAppletModels(t *testing.T) {
	in, _, err := parseBulk([]byte(`[{"type": "Plot", "subtype": "Figure", "id": "p", "attributes": {"title": "t", "id": "p", "doc": "TMP"}},
		{"type": "ColumnDataSource", "id": "s", "attributes": {"data": {"y": [NaN, 1]}, "doc": "x"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	models, push := appletModels(in, "D")
	want := []string{`{"title": "t", "id": "p", "doc": "D"}`, `{"data": {"y": [NaN, 1]}, "id": "s", "doc": "D"}`}
	for i, m := range models {
		if string(m.Attrs) != want[i] {
			t.Errorf("model %d: %s, want %s", i, m.Attrs, want[i])
		}
	}
	wantPush := `{"msgtype": "modelpush", "modelspecs": [{"type": "Plot", "subtype": "Figure", "id": "p", "attributes": ` + want[0] +
		`}, {"type": "ColumnDataSource", "id": "s", "attributes": ` + want[1] + `}]}`
	if string(push) != wantPush {
		t.Errorf("push:\n%s\nwant\n%s", push, wantPush)
	}
}
