package storage_test

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// cdsAttrs is a ColumnDataSource of n points as the Python client sends it: the typical
// big model, written on every data update (n = 1000 gives about 40 KB).
func cdsAttrs(n int) []byte {
	var x, y strings.Builder
	for i := range n {
		if i > 0 {
			x.WriteString(", ")
			y.WriteString(", ")
		}
		v := float64(i) * 10 / float64(n-1) // numpy.linspace(0, 10, n)
		x.WriteString(pyFloat(v))
		y.WriteString(pyFloat(math.Sin(v)*math.Cos(3*v) + 1e-9))
	}
	return []byte(`{"data": {"x": [` + x.String() + `], "y": [` + y.String() + `]}, ` +
		`"column_names": ["x", "y"], "selected": [], "tags": [], ` +
		`"id": "4b8e9f5c-8a1f-4f4e-9d43-2c1b0f6f7a11", "doc": "0d5e7c1a-3b2f-4a6d-8e9f-1a2b3c4d5e6f"}`)
}

func BenchmarkPutModels(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchPut(b, storage.NewMemory(0)) })
	b.Run("shelve", func(b *testing.B) {
		s, err := storage.OpenShelve(filepath.Join(b.TempDir(), "bokeh.db"), 0)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchPut(b, s)
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		s, err := storage.NewRedis(context.Background(), storage.RedisConfig{Addr: srv.Addr, OverlayTTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchPut(b, s)
	})
}

// BenchmarkPutModelsReplicated is the cost of WaitReplicas: the same write to a master with
// one replica on loopback, acknowledged at once (wait=0) or once the replica has it (wait=1).
func BenchmarkPutModelsReplicated(b *testing.B) {
	const pw = "bench-pw"
	master := redistest.Start(b, redistest.WithPassword(pw))
	redistest.Start(b, redistest.WithPassword(pw), redistest.WithReplicaOf(master))
	redistest.WaitSynced(b, master, 1)
	for _, wait := range []int{0, 1} {
		b.Run("wait="+strconv.Itoa(wait), func(b *testing.B) {
			s, err := storage.NewRedis(context.Background(), storage.RedisConfig{Addr: master.Addr, Password: pw,
				WaitReplicas: wait, OverlayTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchPut(b, s)
		})
	}
}

func benchPut(b *testing.B, s storage.Store) {
	attrs := cdsAttrs(1000)
	ms := []storage.Model{{Type: "ColumnDataSource", ID: "4b8e9f5c-8a1f-4f4e-9d43-2c1b0f6f7a11", Attrs: attrs}}
	scope := storage.Scope{DocID: "0d5e7c1a-3b2f-4a6d-8e9f-1a2b3c4d5e6f"}
	ctx := context.Background()
	b.SetBytes(int64(len(attrs)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.PutModels(ctx, scope, ms); err != nil {
			b.Fatal(err)
		}
	}
}

// pyFloat spells v as Python's repr does for these values (always with a point).
func pyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}
