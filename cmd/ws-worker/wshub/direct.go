package wshub

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Direct writes. Most of the time a connection has nothing queued and its socket has room,
// so dispatch writes fan-out frames itself, with one non-blocking system call, instead of
// queueing them and starting the writer goroutine: no goroutine, no deadline, no queue. The
// frames of all the messages the subscriber took in one go (a backlog) go out in that one
// call, so a worker that falls behind catches up at a fraction of the cost per frame, and
// the browser reads them in one go too. What the socket does not take at once is queued at
// the front, and the writer goroutine, which may block, takes over. While dispatch writes
// it holds the connection's writing role, so frames still go out one after the other.

// deliver sends fan-out frames, in order: directly when possible, else through the queue.
// fs is not modified (dispatch shares it between connections).
// It reports whether frames had to be queued for the writer goroutine.
func (c *client) deliver(fs []outFrame, w *directWriter) (queued bool) {
	if len(fs) == 0 {
		return false
	}
	c.mu.Lock()
	if c.closing || c.writing || c.head != len(c.queue) || c.pingDue {
		closing := c.closing
		c.mu.Unlock()
		for _, f := range fs {
			c.enqueue(f)
		}
		return !closing
	}
	c.writing = true
	c.mu.Unlock()

	n, err := c.tryWrite(fs, w)
	full, partial := 0, n // frames written whole, bytes of the next one written
	for full < len(fs) && partial >= frameLen(fs[full]) {
		partial -= frameLen(fs[full])
		full++
	}
	if fanout := countFanout(fs[:full]); fanout > 0 {
		c.hub.counters.delivered.Add(uint64(fanout))
	}

	c.mu.Lock()
	if err == nil && full < len(fs) {
		// The socket is full: the writer goroutine writes the rest, before anything queued
		// meanwhile.
		left := make([]outFrame, 0, len(fs)-full)
		left = append(append(left, rest(fs[full], partial)), fs[full+1:]...)
		c.pushFrontLocked(left)
		for _, f := range left {
			c.queued += f.size
		}
	}
	idle := !c.closing && c.head == len(c.queue) && !c.pingDue
	if idle {
		c.writing = false
	}
	c.mu.Unlock()
	if err != nil {
		c.writeFailed(err, countFanout(fs[full:])) // closes the connection
	}
	if !idle {
		go c.writeLoop() // keeps the writing role dispatch had
	}
	return err == nil && full < len(fs)
}

func frameLen(f outFrame) int { return len(f.head) + len(f.data) }

func countFanout(fs []outFrame) int {
	n := 0
	for _, f := range fs {
		if f.fanout {
			n++
		}
	}
	return n
}

// rest is what remains of f after n bytes were written.
func rest(f outFrame, n int) outFrame {
	f.rest = n > 0
	if n < len(f.head) {
		f.head = f.head[n:]
		return f
	}
	f.data = f.data[n-len(f.head):]
	f.head = nil
	return f
}

// pushFrontLocked puts fs, in order, before every queued frame.
func (c *client) pushFrontLocked(fs []outFrame) {
	if c.head >= len(fs) {
		c.head -= len(fs)
		copy(c.queue[c.head:], fs)
		return
	}
	c.queue = append(fs[:len(fs):len(fs)], c.queue[c.head:]...)
	c.head = 0
}

// directWriter is dispatch's means of writing without waiting: its scratch space and one
// callback for syscall.RawConn.Write, made once, so that a direct write allocates nothing.
// Only dispatch (one goroutine, the subscriber's) uses it.
type directWriter struct {
	iov  [][]byte
	n    int
	err  error
	call func(fd uintptr) bool
}

func newDirectWriter() *directWriter {
	w := &directWriter{iov: make([][]byte, 0, 64)}
	w.call = w.write
	return w
}

// write is the RawConn callback: one write or writev, never waiting.
func (w *directWriter) write(fd uintptr) bool {
	for {
		if len(w.iov) == 1 {
			w.n, w.err = unix.Write(int(fd), w.iov[0])
		} else {
			w.n, w.err = unix.Writev(int(fd), w.iov)
		}
		if w.err != unix.EINTR {
			return true // done, whatever happened
		}
	}
}

// tryWrite writes what the socket takes of fs without waiting, in one system call, and
// reports the bytes written; a full socket is not an error.
func (c *client) tryWrite(fs []outFrame, w *directWriter) (int, error) {
	w.iov = w.iov[:0]
	for _, f := range fs {
		if f.head != nil {
			w.iov = append(w.iov, f.head)
		}
		w.iov = append(w.iov, f.data)
	}
	w.n, w.err = 0, nil
	err := c.raw.Write(w.call)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline of an earlier write by the writer goroutine is still set: it does
		// not apply to a write that does not wait.
		if err = c.nc.SetWriteDeadline(time.Time{}); err == nil {
			err = c.raw.Write(w.call)
		}
	}
	clear(w.iov) // let the frames go
	switch {
	case err != nil:
		return 0, err // closed
	case errors.Is(w.err, unix.EAGAIN):
		return 0, nil
	case w.err != nil:
		return 0, w.err
	}
	return w.n, nil
}
