package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var benchPayload = []byte(`{"msgtype": "modelpush", "modelspecs": [{"pad": "` + strings.Repeat("x", 1000) + `"}]}`)

// BenchmarkZMQRoundTrip measures one message's publish → receive latency over TCP loopback.
func BenchmarkZMQRoundTrip(b *testing.B) {
	pub := newBoundPublisher(b)
	c := newCollector(b, pub.Endpoint(), "bokehplot:bench")
	c.awaitRoute(b, pub, "pub")
	m := Message{Topic: "bokehplot:bench", Payload: benchPayload}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		pub.Publish(m)
		<-c.msgs
	}
}

// BenchmarkZMQThroughput measures sustained publish → receive of 1 KB messages, in windows
// small enough that no high-water mark drops anything.
func BenchmarkZMQThroughput(b *testing.B) {
	benchThroughput(b, benchPayload, 1000, nil, nil)
}

// benchThroughput publishes payload b.N times through a bound publisher to a collector, at
// most window messages ahead of what arrived; it reports the process's CPU per message.
func benchThroughput(b *testing.B, payload []byte, window int, pubOpts, subOpts []Option) {
	pub := newBoundPublisher(b, pubOpts...)
	c := newCollectorWith(b, pub.Endpoint(), subOpts, "bokehplot:bench")
	c.awaitRoute(b, pub, "pub")
	m := Message{Topic: "bokehplot:bench", Payload: payload}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for range n {
			pub.Publish(m)
		}
		for range n {
			<-c.msgs
		}
		sent += n
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkSubscribeAck measures how long a fresh subscription takes to be acknowledged:
// the extra wait before a worker answers subscribesuccess.
func BenchmarkSubscribeAck(b *testing.B) {
	pub := newBoundPublisher(b)
	c := newCollector(b, pub.Endpoint())
	c.awaitRoute(b, pub, "pub")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		topic := PlotTopic(strconv.Itoa(i))
		if err := c.sub.SubscribeAndWait(ctx, topic); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.sub.Unsubscribe(topic); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// payload61KB is the modelpush of a 1000-point ColumnDataSource update (x, y and y2 columns
// as Python's repr writes floats), as the API publishes it: about 61 KB.
func payload61KB() []byte {
	var b strings.Builder
	b.WriteString(`{"msgtype": "modelpush", "modelspecs": [{"type": "ColumnDataSource", "id": "src", "attributes": {"column_names": ["x", "y", "y2"], "selected": [], "data": {`)
	for c, name := range []string{"x", "y", "y2"} {
		if c > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: [", name)
		for i := range 1000 {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%.17g", float64(i)*0.0125787822068600731+float64(c))
		}
		b.WriteString("]")
	}
	b.WriteString(`}, "id": "src", "doc": "d"}}]}`)
	return []byte(b.String())
}

// cpuTime is the process's CPU time so far, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipeline61KB publishes 61 KB updates through a ZMQPublisher to a Subscriber in
// the same process (the API's and the worker's ZeroMQ work), in plaintext and with CURVE;
// cpu-ns/op is the process's CPU time (all threads) per update.
func BenchmarkPipeline61KB(b *testing.B) {
	serverPub, serverSecret, _ := NewKeypair()
	clientPub, clientSecret, _ := NewKeypair()
	for _, curve := range []bool{false, true} {
		name, pubOpts, subOpts := "plain", []Option(nil), []Option(nil)
		if curve {
			name = "curve"
			pubOpts = []Option{WithCurve(Curve{Secret: serverSecret, Allow: []string{clientPub}})}
			subOpts = []Option{WithCurve(Curve{Secret: clientSecret, ServerKey: serverPub})}
		}
		b.Run(name, func(b *testing.B) { benchThroughput(b, payload61KB(), 50, pubOpts, subOpts) })
	}
}
