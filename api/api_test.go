package api_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/broker/brokertest"
	"github.com/bokeh-go/bokeh-server/storage"
)

// testAPI is an in-process server over the memory backend, recording what it publishes.
type testAPI struct {
	root  string
	rec   *brokertest.Recorder
	store storage.Store
	http  *httptest.Server
}

func newTestAPI(t *testing.T, cfg api.Config) *testAPI {
	t.Helper()
	return newTestAPIWithStore(t, cfg, storage.NewMemory(time.Hour))
}

func newTestAPIWithStore(t *testing.T, cfg api.Config, store storage.Store) *testAPI {
	t.Helper()
	if cfg.SecretKey == "" {
		cfg.SecretKey = "test-secret"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Workers == nil {
		cfg.Workers = &api.StaticWorkers{Ports: []int{5007}}
	}
	rec := &brokertest.Recorder{}
	srv, err := api.New(cfg, store, rec)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	prefix, _ := api.NormalizePrefix(cfg.URLPrefix)
	return &testAPI{root: hs.URL + prefix + "/", rec: rec, store: store, http: hs}
}

// target exposes the server to the shared protocol suite; pushes are observed on the
// recorder, standing in for a websocket worker.
func (a *testAPI) target() apitest.Target {
	return apitest.Target{Root: a.root, Watch: a.watch}
}

type recorderWatcher struct {
	rec   *brokertest.Recorder
	topic string
	mu    sync.Mutex
	next  int
}

func (a *testAPI) watch(_ testing.TB, topic, _ string) apitest.Watcher {
	return &recorderWatcher{rec: a.rec, topic: topic, next: len(a.rec.Messages())}
}

func (w *recorderWatcher) Next(_ testing.TB, timeout time.Duration) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		msgs := w.rec.Messages()
		for ; w.next < len(msgs); w.next++ {
			if m := msgs[w.next]; m.Topic == w.topic {
				w.next++
				return m.Topic + ":" + string(m.Payload), true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProtocolSingleUser(t *testing.T) {
	apitest.SingleUser(t, newTestAPI(t, api.Config{}).target())
}

func TestProtocolMultiUser(t *testing.T) {
	apitest.MultiUser(t, newTestAPI(t, api.Config{MultiUser: true}).target())
}

func TestProtocolWithPrefix(t *testing.T) {
	a := newTestAPI(t, api.Config{URLPrefix: "/plots/"})
	apitest.SingleUser(t, a.target())
}
