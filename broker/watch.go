package broker

import (
	"log/slog"
	"os"

	zmq "github.com/pebbe/zmq4"
)

// Waiting for a ZeroMQ socket without a blocking cgo call.
//
// The goroutine that owns a socket never blocks inside libzmq (zmq_poll, a blocking recv):
// with Go 1.26.8 a stop-the-world (GC, ReadMemStats) that starts while a goroutine enters a
// blocking cgo call can wait until that call returns, freezing the whole process for as
// long as the socket stays quiet. Instead a watcher goroutine waits in Go's network poller
// for the socket's ZMQ_FD and tells the owner, which only makes non-blocking calls.
//
// ZMQ_FD signals edges (see zmq_getsockopt): it becomes readable when commands reach the
// socket while the socket is idle, and any operation on the socket may consume the signal.
// So the owner, after every operation, reads the socket until EAGAIN before it waits again
// (which leaves the socket idle); messages and subscriptions that arrive later signal anew.

// sockWatcher reports the readiness of one socket's ZMQ_FD on a channel.
type sockWatcher struct {
	file  *os.File      // a duplicate of ZMQ_FD, in the network poller
	ready chan struct{} // capacity 1: the socket may have something to read
	done  chan struct{} // closed when the watcher goroutine has stopped

	started bool // set by start, read by stop, both on the socket owner's side
}

func newSockWatcher(sock *zmq.Socket) (*sockWatcher, error) {
	f, err := signalFile(sock)
	if err != nil {
		return nil, err
	}
	return &sockWatcher{file: f, ready: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// notify marks the socket as worth reading; the owner calls it itself when it stopped
// reading before EAGAIN.
func (w *sockWatcher) notify() {
	select {
	case w.ready <- struct{}{}:
	default: // the owner has not taken the previous notice yet: it will read then
	}
}

// start runs the watcher goroutine: it waits for signals until stop closes the
// descriptor, and starts with a notice, which covers whatever arrived before.
func (w *sockWatcher) start(log *slog.Logger, what, addr string) {
	w.started = true
	go w.run(log, what, addr)
}

func (w *sockWatcher) run(log *slog.Logger, what, addr string) {
	defer close(w.done)
	rc, err := w.file.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool {
			w.notify()
			return false // wait for the next signal
		})
	}
	if err != nil && !w.stopped() {
		log.Error("zmq: waiting for the socket failed; it is only read after other activity now",
			"socket", what, "addr", addr, "err", err)
	}
}

func (w *sockWatcher) stopped() bool {
	_, err := w.file.Stat()
	return err != nil // os.ErrClosed once stop has closed it
}

// stop ends the goroutine, if started, and waits for it.
func (w *sockWatcher) stop() {
	w.file.Close()
	if w.started {
		<-w.done
	}
}
