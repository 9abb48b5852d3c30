package wshub

import (
	"slices"
	"strconv"
	"testing"
)

// A reader's snapshot of the slice never changes under it, and the live clients stay in
// order through the rebuilds.
func TestSubscribersDropKeepsSnapshotsAndTheLive(t *testing.T) {
	var s subscribers
	cs := make([]*client, 10)
	for i := range cs {
		cs[i] = &client{id: strconv.Itoa(i)}
		s.add(cs[i])
	}
	snapshot := s.all
	want := slices.Clone(snapshot)
	for n, i := range []int{0, 3, 4, 9, 7, 1, 2} {
		cs[i].gone.Store(true)
		s.drop()
		if got := s.live(); got != 10-(n+1) {
			t.Fatalf("after %d drops: %d live", n+1, got)
		}
		if !slices.Equal(snapshot, want) {
			t.Fatalf("after %d drops a reader's snapshot changed", n+1)
		}
	}
	var live []string
	for _, c := range s.all {
		if !c.gone.Load() {
			live = append(live, c.id)
		}
	}
	if !slices.Equal(live, []string{"5", "6", "8"}) {
		t.Fatalf("live clients %v, want [5 6 8]", live)
	}
	if len(s.all) > 2*s.live() {
		t.Fatalf("%d entries for %d live clients: gone ones are never dropped", len(s.all), s.live())
	}
}

// Everyone leaving a topic at once (a worker restart elsewhere, a page's crowd closing)
// leaves the hub without the topic and its ZeroMQ subscription.
func TestEveryoneLeavingForgetsTheTopic(t *testing.T) {
	e := newEnv(t, nil, false)
	const n = 50
	var cs []*wsClient
	for range n {
		c := e.dial()
		c.mustSubscribe("bokehplot:doc1", "read1")
		cs = append(cs, c)
	}
	for i, c := range cs {
		if i%2 == 0 {
			c.conn.Close()
		}
	}
	waitFor(t, "half the clients unregistered", func() bool { return e.hub.Stats().ConnectionsCurrent == n/2 })
	e.publish("bokehplot:doc1", `{"msgtype": "modelpush", "modelspecs": []}`)
	for i, c := range cs {
		if i%2 == 1 {
			c.expect(`bokehplot:doc1:{"msgtype": "modelpush", "modelspecs": []}`)
		}
	}
	for i, c := range cs {
		if i%2 == 1 {
			c.conn.Close()
		}
	}
	// The ZeroMQ subscription is let go just after the connection count drops: wait for
	// both.
	waitFor(t, "no client, topic, subscription or ZeroMQ topic left", func() bool {
		e.hub.mu.RLock()
		left := len(e.hub.topics)
		e.hub.mu.RUnlock()
		st := e.hub.Stats()
		return st.ConnectionsCurrent == 0 && left == 0 && st.ZMQTopics == 0 && st.Subscriptions == 0
	})
}

// BenchmarkEveryoneLeaves unregisters a worker's share of a 100,000-viewer crowd on one
// document, as when they all close at once; one op is one client leaving.
func BenchmarkEveryoneLeaves(b *testing.B) {
	e := newEnv(b, nil, false)
	h := e.hub
	const crowd = 16000
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		cs := make([]*client, crowd)
		h.mu.Lock()
		subs := &subscribers{}
		for i := range cs {
			cs[i] = &client{hub: h, topics: []string{"bokehplot:crowd"}}
			subs.add(cs[i])
		}
		h.topics["bokehplot:crowd"] = subs
		h.mu.Unlock()
		b.StartTimer()
		for _, c := range cs {
			h.unregister(c)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*crowd), "ns/client")
}
