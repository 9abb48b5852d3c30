package redistest_test

import (
	"net"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func TestLifecycle(t *testing.T) {
	s := redistest.Start(t)
	if !reachable(s.Addr) {
		t.Fatalf("%s not reachable after Start", s.Addr)
	}
	s.Stop()
	if reachable(s.Addr) {
		t.Fatalf("%s still reachable after Stop", s.Addr)
	}
	s.Stop() // stopping a stopped server is a no-op
	s.Restart(t)
	if !reachable(s.Addr) {
		t.Fatalf("%s not reachable after Restart", s.Addr)
	}
	s.Restart(t) // restarting a running server stops it first
	s.Kill()
	s.Kill()
	if reachable(s.Addr) {
		t.Fatalf("%s still reachable after Kill", s.Addr)
	}
}
