package rawjson_test

import (
	"testing"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/storage/rawjson"
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

// BenchmarkEscapeSourceUpdate escapes that body into a string literal, as a publisher
// embeds a modelpush in its envelope: byte by byte, and with its number runs copied.
func BenchmarkEscapeSourceUpdate(b *testing.B) {
	body := apitest.SourceUpdate("doc", apitest.Model{Type: "ColumnDataSource", ID: "src"}, 1000, 0.1)
	info, err := rawjson.Check(body)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2*len(body))
	b.Run("escaped", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			buf = rawjson.AppendText(buf[:0], body)
		}
	})
	b.Run("runs-copied", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			buf = rawjson.AppendTextVerbatim(buf[:0], body, info.NumberRuns)
		}
	})
}
