package main

import (
	"fmt"
	"math"
	"strings"
)

// applyScaleLimits puts beside every scale figure the same figure of the raw servers.
func (e *env) applyScaleLimits() {
	for _, r := range e.rep.Rows {
		if r.Scenario != "scale" {
			continue
		}
		raw := e.rep.find("limits", rawCase(r.Case))
		if raw == nil {
			continue
		}
		for _, m := range r.Metrics {
			lm := raw.get(m.Name)
			if lm == nil || len(lm.Runs) == 0 || m.Name == figViewers {
				continue
			}
			lm.summarise()
			m.summarise()
			if lm.Median == 0 || math.IsNaN(lm.Median) {
				continue
			}
			m.LimitName, m.Limit, m.Ratio = "raw", lm.Median, m.Median/lm.Median
		}
	}
}

// worst is the largest run of a figure (NaN when absent).
func (rep *report) worst(scenario, cas, name string) float64 {
	if r := rep.find(scenario, cas); r != nil {
		if m := r.get(name); m != nil && len(m.Runs) > 0 {
			m.summarise()
			return m.Max
		}
	}
	return math.NaN()
}

// checkScaleTargets compares the scale figures with the targets, each with its
// limit, and says where the load generator was the bound.
func (e *env) checkScaleTargets() {
	rep := e.rep
	v, w, d := e.o.scaleViewers, e.o.scaleWorkers, e.o.scaleDocs
	add := func(target string, val float64, unit string, ok bool, limit float64, extra ...string) {
		t := targetResult{Target: target, Value: val}
		if math.IsNaN(val) {
			t.Missing, t.Measured = true, "-"
		} else {
			t.Met = ok
			t.Measured = format(val, unit)
			var how []string
			if !math.IsNaN(limit) {
				how = append(how, "raw "+format(limit, unit))
			}
			how = append(how, extra...)
			if len(how) > 0 {
				t.Measured += " (" + strings.Join(how, "; ") + ")"
			}
		}
		rep.Targets = append(rep.Targets, t)
	}
	idle := caseIdle(v, w)
	conn := rep.median("scale", idle, figViewers)
	add(fmt.Sprintf("%s websocket viewers over %d workers", thousands(int64(v)), w), conn, "count", conn >= float64(v), math.NaN())
	kb := rep.median("scale", idle, figIdleConn)
	add("≤ 8 KB worker memory per idle connection", kb, "KB", kb <= 8, rep.median("limits", rawCase(idle), figIdleConn))
	for _, c := range []string{caseOneDoc(v), caseManyDocs(d, v)} {
		p99 := rep.median("scale", c, figUpd99)
		missing := rep.worst("scale", c, figUpdMissing)
		extra := e.loadGeneratorNote("scale", c)
		if missing > 0 {
			extra = append(extra, fmt.Sprintf("%.0f frames missing", missing))
		}
		add(fmt.Sprintf("p99 ≤ 1 s from the writer's answer, one 1 KB update, %s", c), p99, "ms",
			p99 <= 1000 && missing == 0, rep.median("limits", rawCase(c), figUpd99), extra...)
	}
	storm := caseStorm(v, w)
	all := rep.worst("scale", storm, figStormAll)
	notBack := rep.worst("scale", storm, figStormNot)
	extra := e.loadGeneratorNote("scale", storm)
	if notBack > 0 {
		extra = append(extra, fmt.Sprintf("%.0f viewers not back", notBack))
	}
	add("storm: every viewer back (resubscribed, reloaded) within 30 s, slowest storm", all, "s",
		all <= 30 && notBack == 0, rep.median("limits", rawCase(storm), figStormAll), extra...)
	failed := rep.worst("scale", storm, figStormFail)
	add("storm: no request failed except 429/503 with a retry hint", failed, "count", failed == 0, math.NaN(),
		fmt.Sprintf("%s refusals with a hint", format(rep.worst("scale", storm, figStormHint), "count")))
	after := rep.worst("scale", storm, figStormAfter)
	add("storm: an update afterwards reaches every viewer (frames missing)", after, "count", after == 0, math.NaN())
}

// loadGeneratorNote says when the load generator's CPU was nearly saturated during a case
// (then it, not the server, bounds the figure) and how busy the server was.
func (e *env) loadGeneratorNote(scenario, cas string) []string {
	rep := e.rep
	switch {
	case strings.HasPrefix(cas, "storm"):
		cli := rep.median(scenario, cas, figStormCli)
		srv := rep.median(scenario, cas, figStormSrv)
		return busyNote(cli, srv)
	default:
		// CPU used per update over the time the update took to reach everyone.
		span := rep.median(scenario, cas, figUpdMax)
		cli := 100 * rep.median(scenario, cas, figUpdCliCPU) / span / float64(len(e.split.Client))
		srv := 100 * rep.median(scenario, cas, figUpdSrvCPU) / span / float64(len(e.split.Server))
		return busyNote(cli, srv)
	}
}

func busyNote(cli, srv float64) []string {
	if math.IsNaN(cli) || math.IsInf(cli, 0) {
		return nil
	}
	n := fmt.Sprintf("load generator CPU %.0f %%, server CPU %.0f %%", cli, srv)
	if cli >= 90 {
		n += ": the load generator is the bound"
	}
	return []string{n}
}
