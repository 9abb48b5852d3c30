package api

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedReadsWaitForTheNextBuild: requests arriving while a build runs share the next
// build (never the running one, which may predate them), so that two builds serve any
// crowd, and each answer was read after its request arrived.
func TestSharedReadsWaitForTheNextBuild(t *testing.T) {
	s := newSharedReads()
	var builds atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	build := func(context.Context) ([]byte, error) {
		n := builds.Add(1)
		started <- struct{}{}
		if n == 1 {
			<-release
		}
		return []byte(fmt.Sprint("build ", n)), nil
	}
	ctx := context.Background()
	first := make(chan string, 1)
	go func() { b, _ := s.do(ctx, "doc", build); first <- string(b) }()
	<-started // build 1 runs
	var wg sync.WaitGroup
	later := make([]string, 20)
	for i := range later {
		wg.Add(1)
		go func() { defer wg.Done(); b, _ := s.do(ctx, "doc", build); later[i] = string(b) }()
	}
	// Every later request waits for a build that has not started yet.
	waitUntil(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.docs["doc"].next != nil && s.docs["doc"].next.waiters == len(later)
	})
	close(release)
	wg.Wait()
	if got := <-first; got != "build 1" {
		t.Fatalf("first request got %q", got)
	}
	for i, got := range later {
		if got != "build 2" {
			t.Fatalf("request %d got %q, want build 2 (started after it arrived)", i, got)
		}
	}
	if n := builds.Load(); n != 2 {
		t.Fatalf("%d builds for 21 requests, want 2", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.docs) != 0 {
		t.Fatalf("queues left behind: %v", s.docs)
	}
}

// TestSharedReadsCancelledWaiter: a waiter whose request ends stops waiting; the others
// still get the build.
func TestSharedReadsCancelledWaiter(t *testing.T) {
	s := newSharedReads()
	release := make(chan struct{})
	build := func(context.Context) ([]byte, error) { <-release; return []byte("ok"), nil }
	go s.do(context.Background(), "doc", build)
	waitUntil(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.docs["doc"] != nil })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.do(ctx, "doc", build); errc <- err }()
	other := make(chan string, 1)
	go func() { b, _ := s.do(context.Background(), "doc", build); other <- string(b) }()
	waitUntil(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.docs["doc"].next != nil })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled waiter got an answer")
	}
	close(release)
	if got := <-other; got != "ok" {
		t.Fatalf("other waiter got %q", got)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}
