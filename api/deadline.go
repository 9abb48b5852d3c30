package api

import (
	"io"
	"net/http"
	"time"
)

// Bodies are read against a deadline, so that a client sending slowly (or not at all) cannot
// hold a connection, its goroutine and what it sent so far: ReadTimeout for the start, plus a
// second for every MinBodyRate bytes that arrived, so large bodies on slow but working links
// still get through. Headers have their own timeout (http.Server.ReadHeaderTimeout, set by
// the program). Once the body is in, the deadline is lifted: a slow handler must not find its
// connection's background read timed out (which would cancel the request's context).
const (
	DefaultReadTimeout = 30 * time.Second
	MinBodyRate        = 64 << 10 // bytes per second
)

// bodyDeadlines wraps the API's handler with the body deadline.
func (s *Server) bodyDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			start := time.Now()
			// Servers without deadlines (httptest recorders) return an error: no wrap.
			if rc.SetReadDeadline(start.Add(s.cfg.ReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, start: start, base: s.cfg.ReadTimeout,
					set: start.Add(s.cfg.ReadTimeout)}
			}
		}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	base  time.Duration
	read  int64
	set   time.Time // the deadline in force
	done  bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.done {
		return n, err
	}
	b.read += int64(n)
	if err == io.EOF {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	// Moved in steps of a second at least: setting a deadline is cheap, not free.
	due := b.start.Add(b.base + time.Duration(float64(b.read)/MinBodyRate*float64(time.Second)))
	if due.Sub(b.set) >= time.Second {
		if b.rc.SetReadDeadline(due) == nil {
			b.set = due
		}
	}
	return n, err
}
