package broker

import (
	"context"
	"fmt"
	"testing"
)

// TestBatchDelivery: with WithBatchDelivery every message arrives exactly once, in order,
// as a frame (topic + ":" + payload); a burst published at once comes in batches, and a
// backlog reported by the receiver only slows the subscriber down.
func TestBatchDelivery(t *testing.T) {
	pub := newBoundPublisher(t)
	const topic, n = "bokehplot:batch", 2000
	got := make(chan Message, n+100)
	batches := make(chan int, n+100)
	sub, err := NewSubscriber(pub.Endpoint(), nil, WithLogger(quietLogger()),
		WithBatchDelivery(func(ms []Message) bool {
			batches <- len(ms)
			for _, m := range ms {
				got <- m
			}
			return len(ms) > 10 // exercise the backlog pause too
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := sub.SubscribeAndWait(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		pub.Publish(Message{Topic: topic, Payload: fmt.Appendf(nil, `{"msgtype": "modelpush", "i": %d}`, i)})
	}
	for i := range n {
		var m Message
		select {
		case m = <-got:
		case <-ctx.Done():
			t.Fatalf("only %d of %d messages", i, n)
		}
		want := fmt.Sprintf(`{"msgtype": "modelpush", "i": %d}`, i)
		if m.Topic != topic || string(m.Payload) != want {
			t.Fatalf("message %d: %s %q", i, m.Topic, m.Payload)
		}
	}
	close(batches)
	count := 0
	for range batches {
		count++
	}
	t.Logf("%d messages in %d batches", n, count)
	if st := sub.Stats(); st.Delivered != n || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
