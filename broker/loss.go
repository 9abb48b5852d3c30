package broker

import (
	"slices"
	"time"
)

// LossReason says why a Subscriber may have missed changes; the values are metric labels.
type LossReason string

// The reasons of a Loss.
const (
	// LossGap: a change names a previous change on its topic that never arrived (a
	// high-water mark overflowed somewhere on the path, or a link broke and came back).
	LossGap LossReason = "gap"
	// LossTail: a heartbeat or acknowledgement names a last change that never arrived,
	// although nothing followed it.
	LossTail LossReason = "tail"
	// LossEpoch: a publisher restarted (a new epoch of a known origin), so the last changes
	// of its previous run may not have left it; or a publisher the subscriber has not
	// followed had changed the topic before (it was cut off from the subscriber meanwhile).
	LossEpoch LossReason = "epoch"
	// LossReconnect: the SUB socket lost its connection and made a new one; whatever was
	// published in between is gone.
	LossReconnect LossReason = "reconnect"
)

// Loss reports changes a Subscriber may have missed on Topics (nil: on every topic it is
// subscribed to). Whoever watches those topics must reload them from storage.
type Loss struct {
	Reason LossReason
	Topics []string
}

// Limits of the loss detection.
const (
	// AckGrace is how long after subscribing (or asking for acknowledgements anew) a
	// publisher not followed yet may show up with earlier changes: its acknowledgement may
	// still be on its way, after messages it sent before it saw the subscription.
	AckGrace = 2 * time.Second
	// maxPublishersPerTopic bounds the chains followed per topic; beyond it the one seen
	// least recently is forgotten.
	maxPublishersPerTopic = 16
)

// publisherID is one run of one publisher.
type publisherID struct{ origin, epoch uint64 }

// chainEnd is the last change of one publisher on one topic.
type chainEnd struct {
	id   publisherID
	last uint64
}

// followedTopic is a subscribed topic's chains.
type followedTopic struct {
	since time.Time  // subscribed, or acknowledgements asked for anew
	ends  []chainEnd // most recently seen last
}

// originState is what is known of one origin.
type originState struct {
	epoch, previous uint64
	ambiguous       bool // two running publishers share the origin: restarts not recognised
}

// chainFollower checks the chains of every subscribed topic (wire.go). It belongs to the
// subscriber's goroutine.
type chainFollower struct {
	topics  map[string]*followedTopic
	origins map[uint64]*originState
	now     func() time.Time
	// onAmbiguous is told once about an origin that two running publishers share.
	onAmbiguous func(origin uint64)
}

func newChainFollower() *chainFollower {
	return &chainFollower{topics: map[string]*followedTopic{}, origins: map[uint64]*originState{},
		now: time.Now, onAmbiguous: func(uint64) {}}
}

// follow starts following topic; a topic followed already starts its grace anew.
func (f *chainFollower) follow(topic string) {
	if t := f.topics[topic]; t != nil {
		t.since = f.now()
		return
	}
	f.topics[topic] = &followedTopic{since: f.now()}
}

// unfollow forgets topic.
func (f *chainFollower) unfollow(topic string) { delete(f.topics, topic) }

// followed reports whether topic is followed.
func (f *chainFollower) followed(topic string) bool { return f.topics[topic] != nil }

// publisher notes the origin and epoch of a message. When a known origin shows a new epoch,
// the publisher restarted: the previous run's chains are forgotten, and the topics that had
// one are returned, since its last changes may have been lost.
func (f *chainFollower) publisher(h Header) (restarted []string) {
	if h.Origin == 0 {
		return nil
	}
	o := f.origins[h.Origin]
	switch {
	case o == nil:
		f.origins[h.Origin] = &originState{epoch: h.Epoch}
		return nil
	case o.epoch == h.Epoch || o.ambiguous:
		return nil
	case o.previous == h.Epoch:
		// Back to the epoch before: two publishers run under one name, each looking like
		// the other's restart. Stop treating new epochs of this origin as restarts.
		o.ambiguous = true
		f.onAmbiguous(h.Origin)
		return nil
	}
	old := publisherID{h.Origin, o.epoch}
	o.previous, o.epoch = o.epoch, h.Epoch
	for topic, t := range f.topics {
		n := len(t.ends)
		t.ends = slices.DeleteFunc(t.ends, func(e chainEnd) bool { return e.id == old })
		if len(t.ends) < n {
			restarted = append(restarted, topic)
		}
	}
	return restarted
}

// observe checks a change, acknowledgement or heartbeat on a followed topic against its
// publisher's chain, and moves the chain on. It reports what was missed, if anything.
func (f *chainFollower) observe(topic string, h Header) (LossReason, bool) {
	t := f.topics[topic]
	if t == nil {
		return "", false
	}
	id := publisherID{h.Origin, h.Epoch}
	last := h.Prev // an acknowledgement's or heartbeat's prev is the publisher's last change
	if h.Kind == MsgChange {
		last = h.Seq
	}
	i := slices.IndexFunc(t.ends, func(e chainEnd) bool { return e.id == id })
	if i < 0 {
		t.ends = append(t.ends, chainEnd{id: id, last: last})
		if len(t.ends) > maxPublishersPerTopic {
			t.ends = slices.Delete(t.ends, 0, 1)
		}
		// A publisher not followed yet: fine if it had no change before this one, or
		// while its acknowledgement may still be coming; otherwise its earlier changes
		// were sent while it could not reach us.
		if h.Prev != 0 && f.now().Sub(t.since) > AckGrace {
			return LossEpoch, true
		}
		return "", false
	}
	end := &t.ends[i]
	// prev 0: the publisher forgot the idle topic, and its chain starts again.
	missed := h.Prev != end.last && h.Prev != 0
	end.last = last
	if i != len(t.ends)-1 {
		// Keep the most recently seen at the end, so that eviction takes the stalest.
		e := *end
		t.ends = append(slices.Delete(t.ends, i, i+1), e)
	}
	switch {
	case !missed:
		return "", false
	case h.Kind == MsgChange:
		return LossGap, true
	default:
		return LossTail, true
	}
}
