package main

import (
	"slices"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/api/rawjson"
)

// speedCheck times a fixed piece of the API's work, validating one 1000-point update body
// (61 KB), on this process's CPU: the median of 200 runs, in µs. The machine's speed moves
// by tens of percent from one invocation to the next (a shared host), so the report prints
// it at the start and at the end, to tell a slow machine from a slow change.
func speedCheck() float64 {
	body := apitest.SourceUpdate("speed-check", apitest.Model{Type: "ColumnDataSource", ID: "speed"}, 1000, 0)
	const runs = 200
	took := make([]time.Duration, 0, runs)
	for i := range runs + 20 {
		t0 := time.Now()
		if _, err := rawjson.Check(body); err != nil {
			return 0
		}
		if i >= 20 { // the first ones warm the caches
			took = append(took, time.Since(t0))
		}
	}
	slices.Sort(took)
	return float64(took[len(took)/2].Nanoseconds()) / 1e3
}
