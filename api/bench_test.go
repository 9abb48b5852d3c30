package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// countingPublisher drops messages, counting them (a benchmark must not accumulate them).
type countingPublisher struct{ n atomic.Uint64 }

func (p *countingPublisher) Publish(broker.Message) { p.n.Add(1) }
func (p *countingPublisher) Stats() broker.PublishStats {
	return broker.PublishStats{Published: p.n.Load()}
}
func (p *countingPublisher) Close() error { return nil }

// benchDoc serves an API over store (closed when b ends), tuned by tune when not nil, with
// one document holding a plot of n points pushed as the Python client does; it returns the
// API's handler, the client and the plot.
func benchDoc(b *testing.B, store storage.Store, n int, tune func(*api.Server)) (http.Handler, *apitest.PyClient, *apitest.Plot) {
	b.Cleanup(func() { store.Close() })
	srv, err := api.New(api.Config{SecretKey: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		store, &countingPublisher{})
	if err != nil {
		b.Fatal(err)
	}
	if tune != nil {
		tune(srv)
	}
	h := srv.Handler()
	hs := httptest.NewServer(h)
	b.Cleanup(hs.Close)
	c := apitest.NewPyClient(hs.URL)
	c.UseDoc(b, "bench")
	ctx, _ := c.LoadDocument(b)
	plot := apitest.NewPlot(c.DocID, ctx.ID, n)
	c.Push(b, apitest.MarshalModels(b, plot.Models))
	return h, c, plot
}

// BenchmarkBulkUpsert1000 measures the Python client's streaming write (store_objects of a
// 1000-point ColumnDataSource) through the whole handler: routing, auth, parse, merge,
// storage write and publish, per backend.
func BenchmarkBulkUpsert1000(b *testing.B) {
	backends := map[string]func(b *testing.B) storage.Store{
		"memory": func(*testing.B) storage.Store { return storage.NewMemory(time.Hour) },
		"shelve": func(b *testing.B) storage.Store {
			s, err := storage.OpenShelve(filepath.Join(b.TempDir(), "bokeh.db"), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"redis": func(b *testing.B) storage.Store {
			srv := redistest.Start(b)
			s, err := storage.NewRedis(context.Background(), storage.RedisConfig{Addr: srv.Addr})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"memory", "shelve", "redis"} {
		b.Run(name, func(b *testing.B) {
			h, c, plot := benchDoc(b, backends[name](b), 1000, nil)
			body := apitest.SourceUpdate(c.DocID, plot.Source, 1000, 1)
			url := "/bokeh/bb/" + c.DocID + "/bulkupsert"
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Host = "127.0.0.1" // httptest's example.com is not a name this server answers to
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
				}
			}
		})
	}
}

// BenchmarkDocInfoCrowd measures a crowd reloading one document at once (bokehinfo, 64
// requests in flight, as after a worker restart), with concurrent builds shared and not:
// the CPU per answer is what the API spends on a reconnect storm's reloads.
func BenchmarkDocInfoCrowd(b *testing.B) {
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "unshared", true: "shared"}[shared]
		b.Run(name, func(b *testing.B) {
			var tune func(*api.Server)
			if !shared {
				tune = api.UnshareReads
			}
			h, c, _ := benchDoc(b, storage.NewMemory(time.Hour), 100, tune)
			url := "/bokeh/bokehinfo/" + c.DocID + "/"
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, url, nil)
					req.Host = "127.0.0.1"
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("bokehinfo: %d %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
