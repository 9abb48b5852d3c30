package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/labstack/echo/v4"
)

// zeros is an endless body arriving in 32 KiB reads, as from a socket.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	n := min(len(p), 32<<10)
	clear(p[:n])
	return n, nil
}

// readAllocated reads a body of n bytes (declared as length, -1 for chunked) under limit and
// returns what readBody allocated meanwhile.
func readAllocated(t *testing.T, n, declared, limit int64) (body []byte, allocated uint64, err error) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	rec := httptest.NewRecorder()
	req.ContentLength = declared
	req.Body = http.MaxBytesReader(rec, io.NopCloser(io.LimitReader(zeros{}, n)), limit)
	c := echo.New().NewContext(req, rec)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	body, release, err := readBody(c)
	runtime.ReadMemStats(&after)
	if err == nil {
		body = bytes.Clone(body) // outside the measurement
		release()
	}
	return body, after.TotalAlloc - before.TotalAlloc, err
}

// TestBodyMemoryFollowsWhatArrived: a body costs about its size (twice its size at most,
// for the moment its chunks are joined), whatever it announced, and a refused one no more
// than the limit.
func TestBodyMemoryFollowsWhatArrived(t *testing.T) {
	const mb = 1 << 20
	body, alloc, err := readAllocated(t, 24*mb, -1, 64*mb)
	if err != nil || len(body) != 24*mb {
		t.Fatalf("24 MB chunked body: %d bytes, %v", len(body), err)
	}
	if alloc > 2*24*mb+2*mb {
		t.Errorf("a 24 MB chunked body allocated %d MB", alloc/mb)
	}
	_, alloc, err = readAllocated(t, 33*mb, -1, 32*mb)
	if !errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		t.Fatalf("over the limit: %v, want 413", err)
	}
	if alloc > 32*mb+2*mb {
		t.Errorf("a refused 33 MB body allocated %d MB (limit 32 MB)", alloc/mb)
	}
	// A client announcing 60 MB and sending 100 KB gets no 60 MB buffer.
	_, alloc, err = readAllocated(t, 100<<10, 60*mb, 64*mb)
	if err != nil {
		t.Fatal(err)
	}
	if alloc > 2*mb {
		t.Errorf("100 KB of a body announced as 60 MB allocated %d MB", alloc/mb)
	}
	// Small bodies of known length: one buffer, from the pool when it fits.
	body, _, err = readAllocated(t, 61<<10, 61<<10, 64*mb)
	if err != nil || len(body) != 61<<10 {
		t.Fatalf("61 KB body: %d bytes, %v", len(body), err)
	}
}
