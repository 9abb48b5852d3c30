package rawjson_test

import (
	"testing"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/api/rawjson"
)

// BenchmarkCheckSourceUpdate validates the body of a 1000-point streaming update
// (apitest.SourceUpdate: x, sin, cos columns as Python's repr writes them).
func BenchmarkCheckSourceUpdate(b *testing.B) {
	body := apitest.SourceUpdate("doc", apitest.Model{Type: "ColumnDataSource", ID: "src"}, 1000, 0.1)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := rawjson.Check(body); err != nil {
			b.Fatal(err)
		}
	}
}
