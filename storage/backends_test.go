package storage_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// The contract suite (contract_test.go) run against every backend.

// instance is one backend under test.
type instance struct {
	storage.Store
	// now and advance read and move the clock by which the backend expires overlays:
	// time.Now and a real sleep, or a fake clock.
	now     func() time.Time
	advance func(d time.Duration)
	// reopen, nil for backends without persistence, closes the Store and returns a new
	// one over the same data.
	reopen func() storage.Store
}

// factory returns an instance over empty data whose overlays expire ttl after their
// last write. The instance is closed when the test ends.
type factory func(t *testing.T, ttl time.Duration) instance

func TestMemoryContract(t *testing.T) {
	runContract(t, false, func(t *testing.T, ttl time.Duration) instance {
		s := storage.NewMemory(ttl)
		t.Cleanup(func() { _ = s.Close() })
		clk := newFakeClock()
		storage.SetClock(s, clk.Now)
		return instance{Store: s, now: clk.Now, advance: clk.Advance}
	})
}

func TestShelveContract(t *testing.T) {
	runContract(t, true, func(t *testing.T, ttl time.Duration) instance {
		path := filepath.Join(t.TempDir(), "bokeh.db")
		clk := newFakeClock()
		cur := openShelve(t, path, ttl)
		storage.SetClock(cur, clk.Now)
		t.Cleanup(func() { _ = cur.Close() })
		return instance{Store: cur, now: clk.Now, advance: clk.Advance, reopen: func() storage.Store {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			cur = openShelve(t, path, ttl)
			storage.SetClock(cur, clk.Now)
			return cur
		}}
	})
}

func openShelve(t *testing.T, path string, ttl time.Duration) *storage.Shelve {
	t.Helper()
	s, err := storage.OpenShelve(path, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMiniredisContract(t *testing.T) {
	runContract(t, false, func(t *testing.T, ttl time.Duration) instance {
		mr := miniredis.RunT(t)
		s := newRedis(t, mr.Addr(), ttl)
		clk := newFakeClock()
		return instance{Store: s, now: clk.Now, advance: func(d time.Duration) {
			clk.Advance(d)
			mr.FastForward(d)
		}}
	})
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	runContract(t, true, func(t *testing.T, ttl time.Duration) instance {
		if err := rawClient(t, srv.Addr, 0).FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		cur := newRedis(t, srv.Addr, ttl)
		return instance{Store: cur, now: time.Now, advance: time.Sleep, reopen: func() storage.Store {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			cur = newRedis(t, srv.Addr, ttl)
			return cur
		}}
	})
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newRedis connects a Redis store to addr and closes it when the test ends (a second Close
// after reopen only returns an error, which is ignored).
func newRedis(t testing.TB, addr string, ttl time.Duration) *storage.Redis {
	t.Helper()
	s, err := storage.NewRedis(context.Background(), storage.RedisConfig{Addr: addr, OverlayTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawClient is a plain go-redis client on database db, for looking at the raw layout.
func rawClient(t testing.TB, addr string, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
