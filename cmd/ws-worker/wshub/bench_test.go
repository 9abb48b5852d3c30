package wshub

import (
	"strings"
	"sync"
	"testing"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/gorilla/websocket"
)

// BenchmarkFanOut1000 sends one 1 KB frame to 1,000 websocket connections whose clients
// read concurrently; one op is one frame delivered to all of them. "direct" starts at the
// hub's dispatch, "zmq" at a ZMQPublisher on the other side of TCP loopback.
func BenchmarkFanOut1000(b *testing.B) {
	for _, via := range []string{"direct", "zmq"} {
		b.Run(via, func(b *testing.B) { benchFanOut(b, via == "zmq", 1000) })
	}
}

func benchFanOut(b *testing.B, viaZMQ bool, conns int) {
	e := newEnv(b, nil, false)
	if viaZMQ {
		e = newZMQEnv(b, nil, false)
	}
	var got sync.WaitGroup
	for range conns {
		conn, _, err := websocket.DefaultDialer.Dial(e.wsURL("/bokeh/sub"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		conn.WriteMessage(websocket.TextMessage, []byte(`{"msgtype": "subscribe", "topic": "bokehplot:doc1", "auth": "read1"}`))
		if _, reply, err := conn.ReadMessage(); err != nil || !strings.Contains(string(reply), "subscribesuccess") {
			b.Fatalf("subscribe: %q %v", reply, err)
		}
		// Read into one reused buffer, so that allocations per op are the hub's.
		go func() {
			buf := make([]byte, 4096)
			for {
				_, r, err := conn.NextReader()
				if err != nil {
					return
				}
				for err == nil {
					_, err = r.Read(buf)
				}
				got.Done()
			}
		}()
	}
	if viaZMQ {
		e.syncRoute()
	}
	m := broker.Message{Topic: "bokehplot:doc1",
		Payload: []byte(`{"msgtype": "modelpush", "modelspecs": [{"pad": "` + strings.Repeat("x", 970) + `"}]}`)}
	b.SetBytes(int64(len(m.Payload) * conns)) // bytes delivered per op
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got.Add(conns)
		if viaZMQ {
			e.pub.Publish(m)
		} else {
			e.hub.dispatchBatch([]broker.Message{m})
		}
		got.Wait()
	}
	b.StopTimer()
	if st := e.hub.Stats(); st.SlowClientCloses != 0 || st.Dropped != 0 {
		b.Fatalf("stats %+v", st)
	}
}
