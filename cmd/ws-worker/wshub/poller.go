package wshub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reading without a goroutine per connection. Browsers send a worker almost nothing: two
// subscribe frames, then a pong every ping interval. A goroutine blocked in a read per
// connection kept a stack of 4 KB for that (half of an idle connection's memory), so the
// hub reads every connection itself: one epoll instance holds all their sockets
// (edge-triggered), and one goroutine reads whichever are readable, into one buffer, and
// splits what comes into frames (reader.go). That epoll instance is itself watched by Go's
// network poller, so the goroutine parks like any other instead of holding a thread in
// epoll_wait. gorilla/websocket still makes the handshake (it refuses a client that sends
// data before the handshake is complete, so nothing is left in its buffer afterwards).

// pollBatch is how many readiness events one epoll_wait takes.
const pollBatch = 256

// readBufferBytes is the poller's one read buffer; a read that fills it reads again.
const readBufferBytes = 64 << 10

// poller reads the hub's connections.
type poller struct {
	epfd *os.File
	raw  syscall.RawConn
	wake int // eventfd that ends run

	mu   sync.Mutex
	byFD map[int32]*client

	events []unix.EpollEvent
	buf    []byte
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll") // non-blocking: Go's poller watches it
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wake)
		return nil, err
	}
	return &poller{epfd: f, raw: raw, wake: wake, byFD: make(map[int32]*client),
		events: make([]unix.EpollEvent, pollBatch), buf: make([]byte, readBufferBytes)}, nil
}

// add starts reading c's socket.
func (p *poller) add(c *client) error {
	var fd int
	if err := c.raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	c.fd = int32(fd)
	p.mu.Lock()
	p.byFD[c.fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.fd}
	var err error
	if cerr := p.raw.Control(func(epfd uintptr) { err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, fd, &ev) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.remove(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// remove stops looking up c; its socket leaves the epoll set when it is closed.
func (p *poller) remove(c *client) {
	p.mu.Lock()
	if p.byFD[c.fd] == c {
		delete(p.byFD, c.fd)
	}
	p.mu.Unlock()
}

func (p *poller) lookup(fd int32) *client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byFD[fd]
}

// run reads readable connections until stop. An event may name a socket closed since (and
// its number reused): reading it then finds nothing, which costs one system call.
func (p *poller) run() error {
	stopped := false
	err := p.raw.Read(func(epfd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(epfd), p.events, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				return err != nil // n == 0: wait for the next edge
			}
			for _, ev := range p.events[:n] {
				if ev.Fd == -1 {
					stopped = true
					return true
				}
				if c := p.lookup(ev.Fd); c != nil {
					c.readable(p.buf)
				}
			}
		}
	})
	if stopped {
		return nil
	}
	return err
}

// stop ends run and releases the epoll instance.
func (p *poller) stop(done <-chan struct{}) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(p.wake, one[:])
	<-done
	p.epfd.Close()
	unix.Close(p.wake)
}
