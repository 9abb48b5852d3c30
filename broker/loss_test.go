package broker

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// followerAt is a chainFollower on a clock the test moves.
func followerAt(t *testing.T) (*chainFollower, *time.Time) {
	t.Helper()
	now := time.Unix(1000, 0)
	f := newChainFollower()
	f.now = func() time.Time { return now }
	return f, &now
}

func change(origin, epoch, seq, prev uint64) Header {
	return Header{Kind: MsgChange, Origin: origin, Epoch: epoch, Seq: seq, Prev: prev}
}

func beat(kind MsgKind, origin, epoch, last uint64) Header {
	return Header{Kind: kind, Origin: origin, Epoch: epoch, Prev: last}
}

// expect observes h on topic and checks the verdict.
func expect(t *testing.T, f *chainFollower, topic string, h Header, want LossReason) {
	t.Helper()
	got, lost := f.observe(topic, h)
	if lost != (want != "") || got != want {
		t.Fatalf("observe(%s, %+v) = %q %v, want %q", topic, h, got, lost, want)
	}
}

func TestChainsOfOnePublisher(t *testing.T) {
	f, now := followerAt(t)
	f.follow("bokehplot:a")
	f.follow("bokehplot:b")
	// Changes of both topics interleave in the publisher's numbering; each topic's chain
	// links its own.
	expect(t, f, "bokehplot:a", change(1, 7, 1, 0), "")
	expect(t, f, "bokehplot:b", change(1, 7, 2, 0), "")
	expect(t, f, "bokehplot:a", change(1, 7, 3, 1), "")
	expect(t, f, "bokehplot:a", beat(MsgHeartbeat, 1, 7, 3), "")
	expect(t, f, "bokehplot:b", beat(MsgAck, 1, 7, 2), "")
	// Change 4 (on a) never arrived; 5 names it.
	expect(t, f, "bokehplot:a", change(1, 7, 5, 4), LossGap)
	expect(t, f, "bokehplot:a", change(1, 7, 6, 5), "") // the chain goes on from there
	// The last change on b (7) never arrived and nothing follows: its heartbeat tells.
	expect(t, f, "bokehplot:b", beat(MsgHeartbeat, 1, 7, 7), LossTail)
	expect(t, f, "bokehplot:b", beat(MsgHeartbeat, 1, 7, 7), "")
	// So does an acknowledgement, an answer to anyone's request.
	expect(t, f, "bokehplot:b", beat(MsgAck, 1, 7, 9), LossTail)
	// A publisher that forgot an idle topic starts its chain again at prev 0.
	*now = now.Add(time.Hour)
	expect(t, f, "bokehplot:a", change(1, 7, 100, 0), "")
	// Not followed: nothing to say.
	expect(t, f, "bokehplot:other", change(1, 7, 101, 55), "")
}

// A publisher the follower has not seen on a topic: its earlier changes count as lost only
// once the grace after subscribing is over (before, its acknowledgement may be on the way
// behind messages it sent before it saw the subscription).
func TestNewPublisherOnATopic(t *testing.T) {
	f, now := followerAt(t)
	f.follow("bokehplot:a")
	expect(t, f, "bokehplot:a", change(1, 1, 40, 39), "") // in the grace: the chain starts here
	expect(t, f, "bokehplot:a", change(1, 1, 41, 40), "")
	*now = now.Add(AckGrace + time.Millisecond)
	expect(t, f, "bokehplot:a", change(2, 1, 5, 0), "")        // a newcomer's first change on a
	expect(t, f, "bokehplot:a", change(3, 1, 9, 8), LossEpoch) // one with an unseen change
	expect(t, f, "bokehplot:a", beat(MsgHeartbeat, 4, 1, 3), LossEpoch)
	// Asking for acknowledgements anew (a reconnection) opens the grace again.
	f.follow("bokehplot:a")
	expect(t, f, "bokehplot:a", beat(MsgAck, 5, 1, 3), "")
}

func TestPublisherRestart(t *testing.T) {
	f, _ := followerAt(t)
	for _, topic := range []string{"bokehplot:a", "bokehplot:b", "bokehplot:c"} {
		f.follow(topic)
	}
	if got := f.publisher(change(1, 10, 1, 0)); got != nil {
		t.Fatalf("first sight of origin 1: %v", got)
	}
	expect(t, f, "bokehplot:a", change(1, 10, 1, 0), "")
	expect(t, f, "bokehplot:b", change(1, 10, 2, 0), "")
	f.publisher(change(2, 20, 1, 0))
	expect(t, f, "bokehplot:c", change(2, 20, 1, 0), "")
	// Origin 1 shows a new epoch: its previous run's chains (a and b) may have lost their
	// tails. c follows origin 2 only.
	got := f.publisher(beat(MsgHello, 1, 11, 0))
	slices.Sort(got)
	if !slices.Equal(got, []string{"bokehplot:a", "bokehplot:b"}) {
		t.Fatalf("restart of origin 1 reported %v, want a and b", got)
	}
	// The new run's chains start afresh; the old run's are forgotten.
	expect(t, f, "bokehplot:a", change(1, 11, 1, 0), "")
	if got := f.publisher(change(1, 11, 2, 0)); got != nil {
		t.Fatalf("same epoch again: %v", got)
	}
	// Anonymous publishers (origin 0) are never taken for restarts.
	f.publisher(change(0, 1, 1, 0))
	if got := f.publisher(change(0, 2, 1, 0)); got != nil {
		t.Fatalf("origin 0: %v", got)
	}
}

// Two running publishers configured with one name would look like each other's restarts
// at every message: once an origin goes back to its previous epoch, its new epochs are no
// longer taken for restarts, and the operator is told.
func TestOriginSharedByTwoPublishers(t *testing.T) {
	f, _ := followerAt(t)
	f.follow("bokehplot:a")
	var told []uint64
	f.onAmbiguous = func(o uint64) { told = append(told, o) }
	f.publisher(change(5, 1, 1, 0))
	expect(t, f, "bokehplot:a", change(5, 1, 1, 0), "")
	if got := f.publisher(change(5, 2, 1, 0)); len(got) != 1 {
		t.Fatalf("looked like a restart: %v", got)
	}
	if got := f.publisher(change(5, 1, 2, 1)); got != nil || !slices.Equal(told, []uint64{5}) {
		t.Fatalf("back to the first epoch: %v, told %v", got, told)
	}
	if got := f.publisher(change(5, 2, 3, 0)); got != nil {
		t.Fatalf("ambiguous origin reported a restart: %v", got)
	}
}

// A topic follows at most maxPublishersPerTopic chains: the one seen least recently goes.
func TestChainsPerTopicAreBounded(t *testing.T) {
	f, now := followerAt(t)
	f.follow("bokehplot:a")
	for p := range uint64(maxPublishersPerTopic + 1) {
		expect(t, f, "bokehplot:a", change(p+1, 1, 10, 0), "")
	}
	if n := len(f.topics["bokehplot:a"].ends); n != maxPublishersPerTopic {
		t.Fatalf("%d chains followed, want %d", n, maxPublishersPerTopic)
	}
	*now = now.Add(AckGrace + time.Millisecond)
	// Publisher 1, seen least recently, was forgotten; publisher 2 was not.
	expect(t, f, "bokehplot:a", change(2, 1, 11, 10), "")
	expect(t, f, "bokehplot:a", change(1, 1, 11, 10), LossEpoch)
	f.unfollow("bokehplot:a")
	if f.followed("bokehplot:a") {
		t.Fatal("still followed")
	}
}

func BenchmarkObserveChange(b *testing.B) {
	f := newChainFollower()
	topics := make([]string, 100)
	for i := range topics {
		topics[i] = fmt.Sprintf("bokehplot:doc-%d", i)
		f.follow(topics[i])
	}
	last := make([]uint64, len(topics))
	var seq uint64
	for b.Loop() {
		i := int(seq % uint64(len(topics)))
		seq++
		if _, lost := f.observe(topics[i], change(1, 1, seq, last[i])); lost {
			b.Fatal("lost")
		}
		last[i] = seq
	}
}
