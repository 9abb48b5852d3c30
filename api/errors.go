package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Errors the handlers return; handleError turns them into responses. Clients only look at
// the status (401 and 409 have meanings for the Python client); the JSON body says why.
var (
	errUnauthorized = echo.NewHTTPError(http.StatusUnauthorized, "unauthorized: no permission for this document or no user logged in")
	errLoginNeeded  = echo.NewHTTPError(http.StatusUnauthorized, "unauthorized: log in, or send BOKEHUSER and BOKEHUSER-API-KEY")
)

// DefaultRetryAfter is the Retry-After of a 503 or 429 that does not name its own: long
// enough for a worker restart or a storage failover, short enough not to lose a viewer.
const DefaultRetryAfter = time.Second

const headerRetryAfter = "Retry-After"

func badRequest(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

func notFound(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf(format, args...))
}

func conflict(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusConflict, fmt.Sprintf(format, args...))
}

// handleError writes every error as JSON {"error": message} with its status. Storage that
// cannot be reached is a 503 (retry later), never a hang or a silent loss.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal server error"
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		code = he.Code
		msg = fmt.Sprint(he.Message)
		if code == http.StatusRequestEntityTooLarge {
			msg = fmt.Sprintf("request body larger than the limit of %d bytes", s.cfg.MaxBodyBytes)
		}
	case errors.Is(err, storage.ErrInvalidKey):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, storage.ErrUnavailable):
		// Usually nothing was written; but a write whose confirmation failed (a lost reply,
		// too few replicas within --redis-wait-replicas' timeout) may have been, so say
		// what holds either way: it was not confirmed, and repeating it is safe.
		code, msg = http.StatusServiceUnavailable, "storage unavailable: the change was not confirmed; repeating it is safe, retry shortly"
		s.metrics.storageError(err)
		s.log.Warn("storage unavailable", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	case errors.Is(err, context.Canceled):
		code, msg = 499, "client closed the request"
	default:
		s.metrics.storageError(err)
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if (code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests) && c.Response().Header().Get(headerRetryAfter) == "" {
		// Every refusal that may succeed later says when: pages (live.js) and clients
		// wait that long instead of retrying at once, all together.
		c.Response().Header().Set(headerRetryAfter, strconv.Itoa(int(DefaultRetryAfter/time.Second)))
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(code)
	} else {
		err = c.JSON(code, map[string]string{"error": msg})
	}
	if err != nil {
		s.log.Debug("writing error response", "err", err)
	}
}

func (s *Server) gone(msg string) echo.HandlerFunc {
	return func(echo.Context) error { return echo.NewHTTPError(http.StatusNotFound, msg) }
}

func (s *Server) notImplemented(msg string) echo.HandlerFunc {
	return func(echo.Context) error { return echo.NewHTTPError(http.StatusNotImplemented, msg) }
}
