package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var l Limiter
	if ok, n := l.Allow(time.Hour); !ok || n != 0 {
		t.Fatalf("first event: %v %d", ok, n)
	}
	for range 5 {
		if ok, _ := l.Allow(time.Hour); ok {
			t.Fatal("second event within the interval was allowed")
		}
	}
	if ok, n := l.Allow(0); !ok || n != 5 {
		t.Fatalf("after the interval: %v %d, want true 5", ok, n)
	}
}
