package wshub

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDirectWriteIgnoresOldDeadline: the writer goroutine's write deadline stays set on
// the socket after its write; a later direct write by dispatch, which never waits, must
// not fail on it (it did, and closed healthy clients as slow after WriteTimeout).
func TestDirectWriteIgnoresOldDeadline(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteTimeout = 50 * time.Millisecond }, false)
	c := e.dial()
	c.mustSubscribe("bokehplot:doc1", "read1") // the reply goes out through the writer
	e.syncRoute()
	time.Sleep(200 * time.Millisecond) // past the reply's write deadline
	for i := range 5 {
		e.publish("bokehplot:doc1", fmt.Sprintf(`{"msgtype": "modelpush", "i": %d}`, i))
		c.expect(fmt.Sprintf(`bokehplot:doc1:{"msgtype": "modelpush", "i": %d}`, i))
	}
	if st := e.hub.Stats(); st.SlowClientCloses != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPingWaitsForPartialFrame: when a direct write stopped part-way through a frame, the
// rest is queued first, and a ping that fell due meanwhile must go after it, not into the
// middle of the frame.
func TestPingWaitsForPartialFrame(t *testing.T) {
	e := newEnv(t, nil, false)
	cl := e.dial()
	cl.mustSubscribe("bokehplot:doc1", "read1")
	var c *client
	waitFor(t, "the connection to be registered", func() bool {
		e.hub.mu.RLock()
		defer e.hub.mu.RUnlock()
		for k := range e.hub.clients {
			c = k
		}
		return c != nil
	})
	waitFor(t, "the writer to be idle", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing
	})
	payload := []byte(`{"msgtype": "modelpush", "pad": "` + strings.Repeat("x", 5000) + `"}`)
	frame := append(frameHead("bokehplot:doc1", len(payload)), payload...)
	// Take the writing role as dispatch does, write part of the frame, then leave the rest
	// queued with a ping due, as deliver does when the socket took only part of it.
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
	if _, err := c.nc.Write(frame[:1000]); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.pushFrontLocked([]outFrame{rest(outFrame{data: frame, size: len(frame), fanout: true}, 1000)})
	c.queued += len(frame)
	c.pingDue = true
	c.mu.Unlock()
	go c.writeLoop()
	cl.expect("bokehplot:doc1:" + string(payload))
	if st := e.hub.Stats(); st.SlowClientCloses != 0 {
		t.Fatalf("stats %+v", st)
	}
}
