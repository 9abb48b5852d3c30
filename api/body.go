package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// Request bodies are read into pooled buffers: a stream of 40 KB updates would otherwise
// allocate (and garbage-collect) one buffer per request.
const maxPooledBody = 4 << 20

// A body's memory follows what has arrived, not what the client announced: at most
// maxPrealloc is allocated ahead on the strength of a Content-Length, and a longer body is
// read in chunks (growing to maxChunk) joined once at the end. So a refused body (413, or
// cut by its deadline) never held more than what it sent, and an accepted one costs its
// size twice for the moment of the join, where appending with Go's 1.25x growth made about
// five times its size of garbage (a 66 MB chunked body raised the RSS by 260 MB).
const (
	maxPrealloc = 1 << 20
	maxChunk    = 1 << 20
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// readBody reads the whole request body (over the limit: 413; too slow: 408). release
// returns the buffer to the pool; nothing may keep slices of the body after it.
func readBody(c echo.Context) ([]byte, func(), error) {
	req := c.Request()
	bp := bodyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if n := req.ContentLength; n >= 0 && n < maxPrealloc && int(n)+1 > cap(buf) {
		buf = make([]byte, 0, n+1)
	}
	release := func() {
		if cap(buf) <= maxPooledBody {
			*bp = buf[:0]
			bodyPool.Put(bp)
		}
	}
	var full [][]byte // chunks filled before buf, when the body is larger than one
	size := 0
	for {
		if len(buf) == cap(buf) {
			full = append(full, buf)
			size += len(buf)
			buf = make([]byte, 0, min(max(size, 64<<10), maxChunk))
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			release()
			return nil, nil, bodyError(err)
		}
	}
	if len(full) == 0 {
		return buf, release, nil
	}
	// The pooled first chunk goes back now; the joined body is the caller's.
	joined := make([]byte, 0, size+len(buf))
	for _, chunk := range append(full, buf) {
		joined = append(joined, chunk...)
	}
	first := full[0]
	if cap(first) <= maxPooledBody {
		*bp = first[:0]
		bodyPool.Put(bp)
	}
	return joined, func() {}, nil
}

// bodyError turns a failed body read into the answer the client should get.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		return echo.ErrStatusRequestEntityTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return echo.NewHTTPError(http.StatusRequestTimeout, fmt.Sprintf(
			"request body too slow: after the read timeout it must keep arriving at %d KiB/s", MinBodyRate>>10))
	}
	return fmt.Errorf("read body: %w", err)
}
