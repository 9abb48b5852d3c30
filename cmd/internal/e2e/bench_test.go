package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// benchSmokeTimeout bounds the whole smoke run (it takes about 20 s).
const benchSmokeTimeout = 3 * time.Minute

// TestBenchCommandSmoke runs bokeh-bench with tiny parameters on every scenario and checks
// that each one produced its figures and lost nothing: the command must keep working as the
// servers change. It asserts no speed (figures are the benchmark's output, not a test's).
func TestBenchCommandSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen server processes")
	}
	bin := cluster.Build(t)
	ctx, cancel := context.WithTimeout(context.Background(), benchSmokeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Bench, "--json", "--quiet", "--runs", "1", "--duration", "300ms",
		"--bin-dir", filepath.Dir(bin.Server),
		"--backends", "memory,redis", "--subscribers", "20", "--workers", "1,2", "--idle-conns", "50",
		"--writers", "2", "--fanout-rate", "2000", "--max-msgs", "2000", "--server-cpus", "none", "--client-cpus", "none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bokeh-bench: %v\nstderr:\n%s\nstdout:\n%.4000s", err, stderr.String(), stdout.String())
	}
	var rep struct {
		Rows []struct {
			Scenario, Case string
			Metrics        []struct {
				Name   string
				Median float64
				Runs   []float64
			}
		}
		Targets    []struct{ Target string }
		Errors     []string
		SpeedStart float64 `json:"speed_check_us_start"`
		SpeedEnd   float64 `json:"speed_check_us_end"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("bokeh-bench --json printed no JSON: %v\n%.2000s", err, stdout.String())
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("bokeh-bench reported errors: %v", rep.Errors)
	}
	median := func(scenario, kase, name string) (float64, bool) {
		for _, r := range rep.Rows {
			if r.Scenario != scenario || r.Case != kase {
				continue
			}
			for _, m := range r.Metrics {
				if m.Name == name && len(m.Runs) > 0 {
					return m.Median, true
				}
			}
		}
		return 0, false
	}
	positive := []struct{ scenario, kase, name string }{
		{"update", "memory", "updates/s, 1 writer"},
		{"update", "redis", "updates/s, 1 writer"},
		{"update", "redis", "updates/s, 2 writers"},
		{"fanout", "S=20 W=1", "deliveries/s, max rate"},
		{"fanout", "S=20 W=2", "deliveries/s, max rate"},
		{"fanout", "S=20 W=2", "deliveries/s, fixed rate"},
		{"idle", "50 conns", "RSS growth per connection"},
	}
	for _, c := range positive {
		if v, ok := median(c.scenario, c.kase, c.name); !ok || !(v > 0) {
			t.Errorf("%s %s: %q = %v (present %v), want a positive figure", c.scenario, c.kase, c.name, v, ok)
		}
	}
	// A push may beat its HTTP answer (the API publishes before it answers), so latencies
	// can be negative; they must be there, and less than the drain bound.
	for _, c := range []struct{ scenario, kase, name string }{
		{"update", "memory", "push latency p50"},
		{"update", "memory", "push latency p99 at 1,000/s"},
	} {
		if v, ok := median(c.scenario, c.kase, c.name); !ok || !(v > -1000 && v < 3000) {
			t.Errorf("%s %s: %q = %v ms (present %v), want a latency", c.scenario, c.kase, c.name, v, ok)
		}
	}
	if !(rep.SpeedStart > 0 && rep.SpeedEnd > 0) {
		t.Errorf("speed check %v / %v µs, want both measured", rep.SpeedStart, rep.SpeedEnd)
	}
	for _, c := range []struct{ scenario, kase, name string }{
		{"update", "memory", "frames lost"},
		{"update", "redis", "frames lost"},
		{"fanout", "S=20 W=1", "drops, max rate"},
		{"fanout", "S=20 W=2", "drops, fixed rate"},
	} {
		if v, ok := median(c.scenario, c.kase, c.name); !ok || v != 0 {
			t.Errorf("%s %s: %q = %v (present %v), want 0", c.scenario, c.kase, c.name, v, ok)
		}
	}
	var limits int
	for _, r := range rep.Rows {
		if r.Scenario == "limits" {
			limits++
		}
	}
	if limits == 0 || len(rep.Targets) == 0 {
		t.Errorf("the report has %d limit rows and %d targets, want both", limits, len(rep.Targets))
	}
	if t.Failed() {
		t.Logf("report:\n%.6000s", stdout.String())
	}
}
