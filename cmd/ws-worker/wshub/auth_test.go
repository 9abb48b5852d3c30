package wshub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/workerapi"
)

// fakeClock is a settable time source for the key cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestLookup(t *testing.T, api *fakeAPI, key string) (*keyLookup, *fakeClock) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	k := newKeyLookup(api.URL, key, http.DefaultClient)
	k.now = clock.Now
	return k, clock
}

func TestKeyLookupCaches(t *testing.T) {
	api := newFakeAPI(t, map[string]workerapi.DocKeys{"d": {APIKey: "w", ReadOnlyAPIKey: "r"}})
	k, clock := newTestLookup(t, api, secret)
	ctx := context.Background()

	keys, found, err := k.lookup(ctx, "d")
	if err != nil || !found || keys.APIKey != "w" || keys.ReadOnlyAPIKey != "r" {
		t.Fatalf("lookup: %+v %v %v", keys, found, err)
	}
	k.lookup(ctx, "d")
	if n := api.requests.Load(); n != 1 {
		t.Fatalf("%d API requests, want 1 (cached)", n)
	}
	clock.advance(keyCacheTTL + time.Millisecond)
	k.lookup(ctx, "d")
	if n := api.requests.Load(); n != 2 {
		t.Fatalf("%d API requests after expiry, want 2", n)
	}

	if _, found, err := k.lookup(ctx, "missing"); found || err != nil {
		t.Fatalf("missing doc: found %v, err %v", found, err)
	}
	k.lookup(ctx, "missing")
	if n := api.requests.Load(); n != 3 {
		t.Fatalf("%d API requests, want 3 (miss cached)", n)
	}
	clock.advance(missCacheTTL + time.Millisecond)
	api.mu.Lock()
	api.docs["missing"] = workerapi.DocKeys{APIKey: "new"}
	api.mu.Unlock()
	if keys, found, _ := k.lookup(ctx, "missing"); !found || keys.APIKey != "new" {
		t.Fatalf("new doc not found after the miss expired: %+v", keys)
	}
}

func TestKeyLookupMergesConcurrentRequests(t *testing.T) {
	release := make(chan struct{})
	var requests sync.WaitGroup
	requests.Add(1)
	var once sync.Once
	var count atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		once.Do(requests.Done)
		<-release
		w.Write([]byte(`{"apikey": "w", "readonlyapikey": "r"}`))
	}))
	defer api.Close()
	k := newKeyLookup(api.URL+"/", secret, http.DefaultClient)
	clock := &fakeClock{now: time.Unix(1e9, 0)} // the answer never expires
	k.now = clock.Now
	var done sync.WaitGroup
	for range 50 {
		done.Add(1)
		go func() {
			defer done.Done()
			if _, found, err := k.lookup(context.Background(), "d"); !found || err != nil {
				t.Errorf("lookup: %v %v", found, err)
			}
		}()
	}
	requests.Wait()
	close(release)
	done.Wait()
	if n := count.Load(); n != 1 {
		t.Fatalf("%d API requests for 50 concurrent lookups, want 1", n)
	}
}

func TestKeyLookupErrors(t *testing.T) {
	api := newFakeAPI(t, testDocs)
	k, _ := newTestLookup(t, api, "wrong-secret")
	_, _, err := k.lookup(context.Background(), "doc1")
	if !errors.Is(err, errNoAPI) {
		t.Fatalf("wrong token: %v", err)
	}
	k.lookup(context.Background(), "doc1")
	if n := api.requests.Load(); n != 2 {
		t.Fatalf("%d requests: errors must not be cached", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := k.lookup(ctx, "doc2"); err == nil {
		t.Fatal("cancelled lookup succeeded")
	}
}

func TestKeyMatches(t *testing.T) {
	keys := workerapi.DocKeys{APIKey: "write", ReadOnlyAPIKey: "read"}
	for auth, want := range map[string]bool{"write": true, "read": true, "": false, "writ": false, "readx": false} {
		if got := keyMatches(auth, keys); got != want {
			t.Errorf("keyMatches(%q) = %v", auth, got)
		}
	}
	if keyMatches("", workerapi.DocKeys{}) {
		t.Error("empty auth matched empty keys")
	}
}
