// Package apitest speaks the bokeh 0.8 protocol the way the unchanged Python client does, and
// holds the protocol suite that runs against in-process servers and real processes alike.
package apitest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Model is a full model object as the Python client serialises it (§3.1).
type Model struct {
	Type       string         `json:"type"`
	Subtype    string         `json:"subtype,omitempty"`
	ID         string         `json:"id"`
	Attributes map[string]any `json:"attributes"`
}

// Ref returns the reference to m, with the subtype as Python writes Figures.
func (m Model) Ref() map[string]any {
	r := map[string]any{"type": m.Type, "id": m.ID}
	if m.Subtype != "" {
		r["subtype"] = m.Subtype
	}
	return r
}

// Plot is the 26-model document of `figure(); line(); circle(); show()` in bokeh 0.8.2
// (the shape recorded in ../shared/transcripts/store-plot.txt), with n points.
type Plot struct {
	Context Model
	Figure  Model
	Source  Model
	Models  []Model // every model, PlotContext first
}

func newModel(typ string, attrs map[string]any) Model {
	id := uuid.NewString()
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["id"] = id
	if _, ok := attrs["tags"]; !ok {
		attrs["tags"] = []any{}
	}
	return Model{Type: typ, ID: id, Attributes: attrs}
}

// NewPlot builds the plot for document docid, whose PlotContext id is contextID.
func NewPlot(docid, contextID string, n int) *Plot {
	p := &Plot{}
	fig := newModel("Plot", nil)
	fig.Subtype = "Figure"
	figRef := fig.Ref()
	withPlot := func(typ string, attrs map[string]any) Model {
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["plot"] = figRef
		return newModel(typ, attrs)
	}
	x, y, y2 := SineData(n, 0)
	src := newModel("ColumnDataSource", map[string]any{
		"column_names": []string{"x", "y", "y2"},
		"data":         map[string]any{"x": x, "y": y, "y2": y2},
		"selected":     []any{},
	})
	srcRef := map[string]any{"type": "ColumnDataSource", "id": src.ID}
	xr := newModel("DataRange1d", map[string]any{"sources": []any{map[string]any{"columns": []string{"x"}, "source": srcRef}}})
	yr := newModel("DataRange1d", map[string]any{"sources": []any{map[string]any{"columns": []string{"y", "y2"}, "source": srcRef}}})
	ticker := func() Model {
		return newModel("BasicTicker", map[string]any{"mantissas": []int{2, 5, 10}, "num_minor_ticks": 5})
	}
	xt, yt := ticker(), ticker()
	xf, yf := newModel("BasicTickFormatter", nil), newModel("BasicTickFormatter", nil)
	ref := func(m Model) map[string]any { return m.Ref() }
	xaxis := withPlot("LinearAxis", map[string]any{"ticker": ref(xt), "formatter": ref(xf)})
	yaxis := withPlot("LinearAxis", map[string]any{"ticker": ref(yt), "formatter": ref(yf)})
	xgrid := withPlot("Grid", map[string]any{"ticker": ref(xt), "dimension": 0})
	ygrid := withPlot("Grid", map[string]any{"ticker": ref(yt), "dimension": 1})
	field := func(f string) map[string]any { return map[string]any{"units": "data", "field": f} }
	alpha := func(a float64) map[string]any { return map[string]any{"value": a, "units": "data"} }
	line := newModel("Line", map[string]any{"x": field("x"), "y": field("y"), "line_alpha": alpha(1), "line_color": map[string]any{"value": "navy"}})
	lineNS := newModel("Line", map[string]any{"x": field("x"), "y": field("y"), "line_alpha": alpha(0.1), "line_color": map[string]any{"value": "#1f77b4"}})
	circ := newModel("Circle", map[string]any{"x": field("x"), "y": field("y2"), "size": map[string]any{"value": 6, "units": "screen"},
		"fill_color": map[string]any{"value": "firebrick"}, "fill_alpha": alpha(1), "line_alpha": alpha(1), "line_color": map[string]any{"value": "#1f77b4"}})
	circNS := newModel("Circle", map[string]any{"x": field("x"), "y": field("y2"), "size": map[string]any{"value": 6, "units": "screen"},
		"fill_color": map[string]any{"value": "#1f77b4"}, "fill_alpha": alpha(0.1), "line_alpha": alpha(0.1), "line_color": map[string]any{"value": "#1f77b4"}})
	renderer := func(g, ns Model) Model {
		return newModel("GlyphRenderer", map[string]any{"glyph": ref(g), "nonselection_glyph": ref(ns), "data_source": srcRef,
			"name": nil, "selection_glyph": nil})
	}
	r1, r2 := renderer(line, lineNS), renderer(circ, circNS)
	legend := withPlot("Legend", map[string]any{"legends": []any{
		[]any{"sin(x)", []any{ref(r1)}}, []any{"cos(x)", []any{ref(r2)}}}})
	dims := []string{"width", "height"}
	pan := withPlot("PanTool", map[string]any{"dimensions": dims})
	wheel := withPlot("WheelZoomTool", map[string]any{"dimensions": dims})
	box := withPlot("BoxZoomTool", map[string]any{"dimensions": dims})
	reset := withPlot("ResetTool", nil)
	save := withPlot("PreviewSaveTool", nil)
	events := newModel("ToolEvents", map[string]any{"geometries": []any{}})
	fig.Attributes = map[string]any{
		"id": fig.ID, "tags": []any{}, "title": "example: sin & cos", "plot_width": 500, "plot_height": 300,
		"x_range": ref(xr), "y_range": ref(yr), "extra_x_ranges": map[string]any{}, "extra_y_ranges": map[string]any{},
		"tools":       []any{ref(pan), ref(wheel), ref(box), ref(reset), ref(save)},
		"tool_events": ref(events),
		"above":       []any{}, "right": []any{}, "below": []any{ref(xaxis)}, "left": []any{ref(yaxis)},
		"renderers": []any{ref(xaxis), ref(xgrid), ref(yaxis), ref(ygrid), ref(legend), ref(r1), ref(r2)},
	}
	ctx := Model{Type: "PlotContext", ID: contextID, Attributes: map[string]any{
		"id": contextID, "tags": []any{}, "children": []any{figRef}}}
	p.Context, p.Figure, p.Source = ctx, fig, src
	p.Models = []Model{ctx, save, pan, reset, events, xr, xt, xaxis, yt, xgrid, yf, wheel, xf, yaxis, ygrid, fig, yr, box,
		r1, src, legend, lineNS, line, circNS, r2, circ}
	for i := range p.Models {
		p.Models[i].Attributes["doc"] = docid
	}
	return p
}

// SineData is the streaming example's data: n points of sin and cos shifted by phase.
func SineData(n int, phase float64) (x, y, y2 []float64) {
	x, y, y2 = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range x {
		x[i] = 4 * math.Pi * float64(i) / float64(max(n-1, 1))
		y[i] = math.Sin(x[i] + phase)
		y2[i] = math.Cos(x[i] + phase)
	}
	return x, y, y2
}

// SourceUpdate is the body of store_objects(source) after source.data changed: one
// ColumnDataSource with n points, as in ../shared/transcripts/streaming-updates.txt.
func SourceUpdate(docid string, src Model, n int, phase float64) []byte {
	x, y, y2 := SineData(n, phase)
	var b strings.Builder
	fmt.Fprintf(&b, `[{"type": "ColumnDataSource", "id": %q, "attributes": {"tags": [], "column_names": ["x", "y", "y2"], "data": {`, src.ID)
	for i, col := range []struct {
		name string
		v    []float64
	}{{"x", x}, {"y", y}, {"y2", y2}} {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: [", col.name)
		for j, v := range col.v {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyFloat(v))
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, `}, "selected": [], "id": %q, "doc": %q}}]`, src.ID, docid)
	return []byte(b.String())
}

// pyFloat formats like Python's repr(float), including the bare tokens of NaN and inf.
func pyFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// MarshalModels encodes models as the bulkupsert body.
func MarshalModels(tb testing.TB, models []Model) []byte {
	tb.Helper()
	b, err := json.Marshal(models)
	if err != nil {
		tb.Fatalf("marshal models: %v", err)
	}
	return b
}
