package broker

import (
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
