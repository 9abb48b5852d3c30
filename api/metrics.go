package api

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bokeh-go/bokeh-server/storage"
)

// metrics are the API's Prometheus series, on a registry of the server's own so that tests
// can run several servers in one process.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	storageErrs *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bokeh_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bokeh_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		storageErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bokeh_request_failures_total",
			Help: "Requests that failed inside the server, by kind (unavailable: storage down or timing out; internal: a 500).",
		}, []string{"kind"}),
	}
	pubStat := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(m.requests, m.latency, m.storageErrs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		pubStat("bokeh_published_messages_total", "Messages handed to the broker (modelpush, docchange).",
			func() uint64 { return s.pub.Stats().Published }),
		pubStat("bokeh_publish_dropped_total", "Messages the broker dropped instead of blocking a request.",
			func() uint64 { return s.pub.Stats().Dropped }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bokeh_storage_up",
			Help: "1 when the storage backend answers a ping at scrape time."},
			func() float64 {
				if s.Ready(context.Background()) != nil {
					return 0
				}
				return 1
			}),
	)
	return m
}

// observe records one finished request under its route pattern (never the raw path, which
// would make one series per document).
func (m *metrics) observe(c echo.Context, status int, took time.Duration) {
	route := c.Path()
	if route == "" {
		route = "unmatched"
	}
	method := c.Request().Method
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(took.Seconds())
}

// storageError counts a failed request by kind: unavailable storage, or anything else
// that ended in a 500.
func (m *metrics) storageError(err error) {
	kind := "internal"
	if errors.Is(err, storage.ErrUnavailable) {
		kind = "unavailable"
	}
	m.storageErrs.WithLabelValues(kind).Inc()
}

func (s *Server) metricsHandler() echo.HandlerFunc {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return func(c echo.Context) error {
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

// Registry exposes the API's metrics registry (cmd/bokeh-server adds process-level series).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }
