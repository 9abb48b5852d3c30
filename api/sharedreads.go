package api

import (
	"context"
	"sync"
	"time"
)

// Document reloads come in crowds: every viewer of a published plot reloads it when its
// worker restarts (live.js), tens of thousands within seconds. Requests for the same
// document that arrive while one build of the answer runs wait for the next build and share
// it, so that at most two builds per document run back to back however many ask, and each
// answer was still read from storage after its request arrived: it holds every change
// published before, which is what live.js relies on (it reloads once its subscription is
// confirmed, then replays the pushes that came meanwhile). A build's answer is never kept
// for later requests. Scratch-copy (overlay) reads are not shared.

// sharedBuildTimeout bounds one shared build, which no single request's context governs.
const sharedBuildTimeout = 30 * time.Second

type sharedReads struct {
	mu   sync.Mutex
	docs map[string]*buildQueue
}

// buildQueue is one document's builds: whether one runs, and the next one's waiters.
type buildQueue struct {
	running bool
	next    *sharedBuild
}

type sharedBuild struct {
	build   func(context.Context) ([]byte, error) // the first waiter's
	done    chan struct{}
	waiters int // requests sharing it
	body    []byte
	err     error
}

func newSharedReads() *sharedReads { return &sharedReads{docs: make(map[string]*buildQueue)} }

// do returns build's answer for key, from a build that started after this call did.
func (s *sharedReads) do(ctx context.Context, key string, build func(context.Context) ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	q := s.docs[key]
	if q == nil {
		q = &buildQueue{}
		s.docs[key] = q
	}
	if !q.running {
		q.running = true
		s.mu.Unlock()
		body, err := build(ctx)
		s.finished(key, q)
		return body, err
	}
	b := q.next
	if b == nil {
		b = &sharedBuild{build: build, done: make(chan struct{})}
		q.next = b
	}
	b.waiters++
	s.mu.Unlock()
	select {
	case <-b.done:
		return b.body, b.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// finished starts the build the waiters gathered while one ran, if any.
func (s *sharedReads) finished(key string, q *buildQueue) {
	s.mu.Lock()
	b := q.next
	q.next = nil
	if b == nil {
		q.running = false
		delete(s.docs, key)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sharedBuildTimeout)
		b.body, b.err = b.build(ctx)
		cancel()
		close(b.done)
		s.finished(key, q)
	}()
}
