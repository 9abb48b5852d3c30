package api

import (
	"hash/maphash"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// accessLog logs one line per request and records its metrics. With FilterLogs, successful
// static-file and probe requests are left out (they drown everything else).
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		took := time.Since(start)
		s.metrics.observe(c, status, took)
		path := c.Request().URL.Path
		if s.cfg.FilterLogs && status < 400 && s.isQuietPath(path) {
			return nil
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(c.Request().Context(), level, "http",
			slog.String("method", c.Request().Method), slog.String("path", path),
			slog.Int("status", status), slog.Int64("bytes", c.Response().Size),
			slog.Duration("duration", took), slog.String("remote", c.RealIP()))
		return nil
	}
}

func (s *Server) isQuietPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	path = strings.TrimPrefix(path, s.cfg.URLPrefix)
	return strings.HasPrefix(path, "/bokehjs/") || strings.HasPrefix(path, "/static/") ||
		strings.HasPrefix(path, "/bokeh/static/") || path == "/bokeh/favicon.ico"
}

// bodyLimit refuses bodies over MaxBodyBytes with 413, before any handler reads them.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return echo.ErrStatusRequestEntityTooLarge
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

// keyedLocks serialises writes per document inside this process, so that a merge's
// read-modify-write is not interleaved and publish order equals storage order.
type keyedLocks struct {
	seed  maphash.Seed
	locks [256]sync.Mutex
}

func newKeyedLocks() *keyedLocks { return &keyedLocks{seed: maphash.MakeSeed()} }

func (k *keyedLocks) lock(key string) func() {
	m := &k.locks[maphash.String(k.seed, key)%uint64(len(k.locks))]
	m.Lock()
	return m.Unlock
}
