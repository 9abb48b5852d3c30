package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// Request bodies are read into pooled buffers: a stream of 40 KB updates would otherwise
// allocate (and garbage-collect) one buffer per request.
const maxPooledBody = 4 << 20

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// readBody reads the whole request body (over the limit: 413). release returns the buffer
// to the pool; nothing may keep slices of the body after it.
func readBody(c echo.Context) ([]byte, func(), error) {
	req := c.Request()
	bp := bodyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if n := req.ContentLength; n >= 0 && n < maxPooledBody && int(n)+1 > cap(buf) {
		buf = make([]byte, 0, n+1)
	}
	release := func() {
		if cap(buf) <= maxPooledBody {
			*bp = buf[:0]
			bodyPool.Put(bp)
		}
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, release, nil
		}
		if err != nil {
			release()
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, nil, echo.ErrStatusRequestEntityTooLarge
			}
			return nil, nil, fmt.Errorf("read body: %w", err)
		}
	}
}
