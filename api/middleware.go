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

// accessLog logs one line per request. With FilterLogs, successful static-file requests are
// left out (they drown everything else when pages load BokehJS).
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		path := c.Request().URL.Path
		if s.cfg.FilterLogs && status < 400 && s.isStaticPath(path) {
			return nil
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(c.Request().Context(), level, "http",
			slog.String("method", c.Request().Method), slog.String("path", path),
			slog.Int("status", status), slog.Int64("bytes", c.Response().Size),
			slog.Duration("duration", time.Since(start)), slog.String("remote", c.RealIP()))
		return nil
	}
}

func (s *Server) isStaticPath(path string) bool {
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
