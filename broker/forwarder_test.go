package broker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func startForwarder(t *testing.T) *Forwarder {
	t.Helper()
	f, err := NewForwarder("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)
	return f
}

// runForwarder runs f until the test ends.
func runForwarder(t *testing.T, f *Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})
}

func TestForwarderFansInAndOut(t *testing.T) {
	f := startForwarder(t)
	var pubs []*ZMQPublisher
	for range 2 {
		pub, err := NewZMQPublisher(f.InputEndpoint(), Connect, WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		pubs = append(pubs, pub)
	}
	onlyX := newCollector(t, f.OutputEndpoint(), "bokehplot:X")
	both := newCollector(t, f.OutputEndpoint(), "bokehplot:X", "bokehplot:Y")
	for i, pub := range pubs {
		onlyX.awaitRoute(t, pub, fmt.Sprint("pub", i))
		both.awaitRoute(t, pub, fmt.Sprint("pub", i))
	}

	const n = 200
	for i := range n {
		for p, pub := range pubs {
			pub.Publish(Message{Topic: "bokehplot:X", Payload: fmt.Appendf(nil, "x %d %d", p, i)})
			pub.Publish(Message{Topic: "bokehplot:Y", Payload: fmt.Appendf(nil, "y %d %d", p, i)})
		}
	}
	for _, c := range []*collector{onlyX, both} {
		for p, pub := range pubs {
			pub.Publish(Message{Topic: "bokehplot:X", Payload: fmt.Appendf(nil, "end %d", p)})
		}
		// Order holds per publisher, not across publishers.
		next := map[string]int{}
		ends := 0
		for ends < len(pubs) {
			m := c.next(t)
			var kind string
			var p, i int
			if strings.HasPrefix(string(m.Payload), "end") {
				ends++
				continue
			}
			if _, err := fmt.Sscanf(string(m.Payload), "%s %d %d", &kind, &p, &i); err != nil {
				t.Fatalf("bad payload %q", m.Payload)
			}
			key := fmt.Sprint(kind, p)
			if i != next[key] {
				t.Fatalf("%s: got %q, want index %d", c.syncName, m.Payload, next[key])
			}
			next[key]++
		}
		for p := range pubs {
			if next[fmt.Sprint("x", p)] != n {
				t.Fatalf("%s: got %d X messages from publisher %d, want %d", c.syncName, next[fmt.Sprint("x", p)], p, n)
			}
			wantY := 0
			if c == both {
				wantY = n
			}
			if next[fmt.Sprint("y", p)] != wantY {
				t.Fatalf("%s: got %d Y messages from publisher %d, want %d", c.syncName, next[fmt.Sprint("y", p)], p, wantY)
			}
		}
		if c == onlyX {
			// No Y message was delivered (checked above) or even counted as a prefix
			// collision. (Acknowledgements can still be arriving, so Received is not
			// compared: it may count one whose Acks increment is not visible yet.)
			if st := onlyX.sub.Stats(); st.Filtered != 0 || st.Malformed != 0 {
				t.Fatalf("X-only subscriber stats %+v: Y traffic reached it", st)
			}
		}
	}
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "tcp://" + ln.Addr().String()
}

func TestForwarderStopsOnCancel(t *testing.T) {
	in, out := freeTCPAddr(t), freeTCPAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		f, err := NewForwarder(in, out, WithLogger(quietLogger()))
		if err == nil {
			err = f.Run(ctx)
		}
		done <- err
	}()

	pub, err := NewZMQPublisher(in, Connect, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	c := newCollector(t, out, "bokehuser:u")
	c.awaitRoute(t, pub, "pub")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("forwarder: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the forwarder did not stop after cancel")
	}
}

func TestForwarderBindInUse(t *testing.T) {
	f := startForwarder(t)
	_, err := NewForwarder(f.InputEndpoint(), "tcp://127.0.0.1:*", WithLogger(quietLogger()))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v, want address already in use", err)
	}
}
