package api

import (
	"context"
	"sync"
)

// fifoLocks are named locks handed out in the order they were asked for: an applet page's
// writes must reach the host one at a time and in arrival order (sync.Mutex promises no
// order), and each must see the previous one's overlay. Different names never wait for
// each other, so one page's slow callback holds up no other page.
type fifoLocks struct {
	mu     sync.Mutex
	queues map[string][]chan struct{} // head holds the lock
}

func newFIFOLocks() *fifoLocks { return &fifoLocks{queues: map[string][]chan struct{}{}} }

// lock waits for name, or until ctx ends (then it holds nothing and returns ctx's error).
func (f *fifoLocks) lock(ctx context.Context, name string) (func(), error) {
	ch := make(chan struct{})
	f.mu.Lock()
	q := append(f.queues[name], ch)
	f.queues[name] = q
	if len(q) == 1 {
		close(ch)
	}
	f.mu.Unlock()
	unlock := func() { f.release(name, ch) }
	select {
	case <-ch:
		return unlock, nil
	case <-ctx.Done():
		unlock()
		return nil, ctx.Err()
	}
}

// release removes ch from name's queue; if ch held the lock, the next waiter gets it.
func (f *fifoLocks) release(name string, ch chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[name]
	for i, c := range q {
		if c != ch {
			continue
		}
		q = append(q[:i:i], q[i+1:]...)
		if i == 0 && len(q) > 0 {
			close(q[0])
		}
		break
	}
	if len(q) == 0 {
		delete(f.queues, name)
	} else {
		f.queues[name] = q
	}
}
