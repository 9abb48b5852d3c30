package broker

import (
	"context"
	"strconv"
	"strings"
	"testing"
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
	const window = 1000
	pub := newBoundPublisher(b)
	c := newCollector(b, pub.Endpoint(), "bokehplot:bench")
	c.awaitRoute(b, pub, "pub")
	m := Message{Topic: "bokehplot:bench", Payload: benchPayload}
	b.SetBytes(int64(len(benchPayload)))
	b.ReportAllocs()
	b.ResetTimer()
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
