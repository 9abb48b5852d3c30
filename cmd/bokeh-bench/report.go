package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// metric is one figure of a case, measured once per run; the table shows the median.
type metric struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Runs   []float64 `json:"runs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// Limit is the median of the same figure measured without the server in the way (see
	// the limits scenario); Ratio is Median / Limit.
	LimitName string  `json:"limit_name,omitempty"`
	Limit     float64 `json:"limit,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
}

// row is one case of a scenario, e.g. update/memory or fanout/S=1000 W=2.
type row struct {
	Scenario string    `json:"scenario"`
	Case     string    `json:"case"`
	Metrics  []*metric `json:"metrics"`
	Notes    []string  `json:"notes,omitempty"`
}

func (r *row) add(name, unit string) *metric {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	m := &metric{Name: name, Unit: unit}
	r.Metrics = append(r.Metrics, m)
	return m
}

// set records one run's value of a metric.
func (r *row) set(name, unit string, v float64) { m := r.add(name, unit); m.Runs = append(m.Runs, v) }

func (r *row) get(name string) *metric {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (r *row) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(r.Notes, n) {
		r.Notes = append(r.Notes, n)
	}
}

// summarise fills median, min and max.
func (m *metric) summarise() {
	if len(m.Runs) == 0 {
		m.Median, m.Min, m.Max = math.NaN(), math.NaN(), math.NaN()
		return
	}
	s := slices.Clone(m.Runs)
	slices.Sort(s)
	m.Min, m.Max = s[0], s[len(s)-1]
	if len(s)%2 == 1 {
		m.Median = s[len(s)/2]
	} else {
		m.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
}

// targetResult is one of the targets with the measured median.
type targetResult struct {
	Target   string  `json:"target"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	Met      bool    `json:"met"`
	Missing  bool    `json:"not_measured,omitempty"`
}

// report is the whole output (--json prints it as is).
type report struct {
	Command   string   `json:"command"`
	Started   string   `json:"started"`
	Elapsed   string   `json:"elapsed"`
	GoVersion string   `json:"go_version"`
	CPUModel  string   `json:"cpu_model"`
	CPU       cpuSplit `json:"cpu_split"`
	LoadAvg   float64  `json:"load_average_at_start"`
	// SpeedStart and SpeedEnd are speedCheck's µs at the start and the end.
	SpeedStart float64        `json:"speed_check_us_start"`
	SpeedEnd   float64        `json:"speed_check_us_end"`
	Runs       int            `json:"runs"`
	Phase      string         `json:"phase_duration"`
	Attached   bool           `json:"attached"`
	Params     map[string]any `json:"params"`
	Rows       []*row         `json:"rows"`
	Targets    []targetResult `json:"targets"`
	Errors     []string       `json:"errors,omitempty"`
}

func (rep *report) find(scenario, cas string) *row {
	for _, r := range rep.Rows {
		if r.Scenario == scenario && r.Case == cas {
			return r
		}
	}
	return nil
}

func (rep *report) row(scenario, cas string) *row {
	if r := rep.find(scenario, cas); r != nil {
		return r
	}
	r := &row{Scenario: scenario, Case: cas}
	rep.Rows = append(rep.Rows, r)
	return r
}

// median of a metric, NaN when absent.
func (rep *report) median(scenario, cas, name string) float64 {
	if r := rep.find(scenario, cas); r != nil {
		if m := r.get(name); m != nil && len(m.Runs) > 0 {
			m.summarise()
			return m.Median
		}
	}
	return math.NaN()
}

// format renders a figure with its unit, compactly.
func format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case "ms":
		switch {
		case math.Abs(v) < 1:
			return strconv.FormatFloat(v, 'f', 3, 64) + " ms"
		case math.Abs(v) < 10:
			return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	case "KB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " KB"
	case "MB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MB"
	case "%":
		return strconv.FormatFloat(v, 'f', 0, 64) + " %"
	case "count":
		return thousands(int64(math.Round(v)))
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "":
		if math.Abs(v) < 100 {
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
	}
	return thousands(int64(math.Round(v))) + " " + unit
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printTable writes the human-readable report.
func (rep *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "bokeh-bench: %s\n", rep.Command)
	fmt.Fprintf(w, "%s, %s; %d runs per case, %s per phase, figures are medians [min–max]\n",
		rep.CPUModel, rep.GoVersion, rep.Runs, rep.Phase)
	fmt.Fprintf(w, "CPU split (%d CPUs): %s; load average at start %.2f\n", rep.CPU.Total, rep.CPU.Note, rep.LoadAvg)
	fmt.Fprintf(w, "speed check (validating one 61 KB update on the load generator's CPU): %.1f µs at the start, %.1f µs at the end\n\n",
		rep.SpeedStart, rep.SpeedEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tcase\tfigure\tmedian\t[min – max]\tlimit\tratio\t")
	last := ""
	for _, r := range rep.Rows {
		if r.Scenario != last && last != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
		}
		last = r.Scenario
		for i, m := range r.Metrics {
			m.summarise()
			sc, cs := r.Scenario, r.Case
			if i > 0 {
				sc, cs = "", ""
			}
			limit, ratio := "", ""
			if m.LimitName != "" {
				limit = m.LimitName + " " + format(m.Limit, m.Unit)
				ratio = strconv.FormatFloat(m.Ratio, 'f', 2, 64)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t[%s – %s]\t%s\t%s\t\n", sc, cs, m.Name, format(m.Median, m.Unit),
				format(m.Min, m.Unit), format(m.Max, m.Unit), limit, ratio)
		}
	}
	tw.Flush()
	for _, r := range rep.Rows {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s %s: %s\n", r.Scenario, r.Case, n)
		}
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (medians):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "met"
			switch {
			case t.Missing:
				verdict = "not measured"
			case !t.Met:
				verdict = "NOT MET"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", t.Target, t.Measured, verdict)
		}
		tw.Flush()
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	fmt.Fprintf(w, "elapsed %s\n", rep.Elapsed)
}

func (rep *report) printJSON(w io.Writer) error {
	for _, r := range rep.Rows {
		for _, m := range r.Metrics {
			m.summarise()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonSafe(rep))
}

// jsonSafe replaces NaN (which encoding/json refuses) by zero in the summaries.
func jsonSafe(rep *report) *report {
	for _, r := range rep.Rows {
		for _, m := range r.Metrics {
			for _, p := range []*float64{&m.Median, &m.Min, &m.Max, &m.Limit, &m.Ratio} {
				if math.IsNaN(*p) || math.IsInf(*p, 0) {
					*p = 0
				}
			}
		}
	}
	for i := range rep.Targets {
		if math.IsNaN(rep.Targets[i].Value) {
			rep.Targets[i].Value = 0
		}
	}
	return rep
}

// percentiles of latencies in nanoseconds, returned in milliseconds (nearest rank).
func percentiles(ns []int64, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	if len(ns) == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	slices.Sort(ns)
	for i, p := range ps {
		k := int(math.Ceil(p/100*float64(len(ns)))) - 1
		k = min(max(k, 0), len(ns)-1)
		out[i] = float64(ns[k]) / 1e6
	}
	return out
}
