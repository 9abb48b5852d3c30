package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metricLine is one sample of a Prometheus text exposition.
type metricLine struct {
	name   string
	labels map[string]string
	value  float64
}

// metricLines fetches and parses a /metrics page (the text format the servers write:
// label values without escaped quotes).
func metricLines(url string) ([]metricLine, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []metricLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		m := metricLine{name: line[:sp], value: v, labels: map[string]string{}}
		if i := strings.IndexByte(m.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(m.name[i+1:], "}"), ",") {
				if k, val, ok := strings.Cut(kv, "="); ok {
					m.labels[k] = strings.Trim(val, `"`)
				}
			}
			m.name = m.name[:i]
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
