package broker

import (
	"sync"
	"time"
)

// A publisher's per-topic chains (wire.go) and heartbeats.
//
// A subscriber sees a missed change when the next change on the topic names a previous one
// it never got. When the missed change is the last one before a silence (tail loss),
// nothing follows it; so after each change a publisher repeats the topic's last seq in a
// few heartbeats, spaced out: heartbeatFirst after the change, then at doubling intervals,
// heartbeatCount in all (0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s after the last change). A
// topic that keeps changing sends none (every change restarts the schedule), an idle one
// none after half a minute, so the cost follows the topics that changed recently, not
// the topics there are. Longer outages are caught otherwise: a subscriber that reconnects
// resyncs, and a publisher that reconnects to a forwarder sends heartbeats for every topic
// it knows (beatAll).
const (
	heartbeatFirst = 500 * time.Millisecond
	heartbeatCount = 6
	// heartbeatTick is how often the publisher looks for due heartbeats.
	heartbeatTick = 250 * time.Millisecond
	// maxHeartbeatsPerTick bounds one tick's heartbeats (8,192 a second); the rest wait for
	// the next tick.
	maxHeartbeatsPerTick = 2048
	// TopicForget is how long a topic stays unchanged before its publisher forgets its
	// chain (its next change then has prev 0), which bounds a publisher's memory by the
	// topics changed recently.
	TopicForget = 10 * time.Minute
	// forgetSweep is how often forgotten topics are looked for.
	forgetSweep = time.Minute
)

// chainTopic is one topic's chain at the publisher.
type chainTopic struct {
	last    uint64    // seq of the topic's last change
	changed time.Time // when that change was numbered
	beats   int       // heartbeats sent since
	due     time.Time // when the next one is due (while beats < heartbeatCount)
}

// chains numbers a publisher's changes and schedules their heartbeats. It is safe for
// concurrent use: changes are numbered by whoever sends them, drops by Publish.
type chains struct {
	mu        sync.Mutex
	seq       uint64
	topics    map[string]*chainTopic
	beating   map[string]*chainTopic // the topics with heartbeats due
	lastSweep time.Time
}

func newChains() *chains {
	return &chains{topics: map[string]*chainTopic{}, beating: map[string]*chainTopic{}}
}

// change numbers a change of topic made now and returns its seq and prev.
func (c *chains) change(topic string, now time.Time) (seq, prev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topic]
	if t == nil {
		t = &chainTopic{}
		c.topics[topic] = t
	}
	c.seq++
	seq, prev = c.seq, t.last
	t.last, t.changed, t.beats, t.due = seq, now, 0, now.Add(heartbeatFirst)
	c.beating[topic] = t
	return seq, prev
}

// last is the seq of topic's last change, 0 for none.
func (c *chains) last(topic string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topic]; t != nil {
		return t.last
	}
	return 0
}

// heartbeat is one due heartbeat.
type heartbeat struct {
	topic string
	last  uint64
}

// due appends at most limit heartbeats due by now and schedules their next ones.
func (c *chains) due(dst []heartbeat, now time.Time, limit int) []heartbeat {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, t := range c.beating {
		if len(dst) == limit {
			break
		}
		if now.Before(t.due) {
			continue
		}
		dst = append(dst, heartbeat{topic: topic, last: t.last})
		t.beats++
		if t.beats >= heartbeatCount {
			delete(c.beating, topic)
			continue
		}
		t.due = t.changed.Add(heartbeatFirst * (1<<(t.beats+1) - 1))
	}
	if now.Sub(c.lastSweep) >= forgetSweep {
		c.lastSweep = now
		for topic, t := range c.topics {
			if now.Sub(t.changed) >= TopicForget && c.beating[topic] == nil {
				delete(c.topics, topic)
			}
		}
	}
	return dst
}

// beatAll makes one heartbeat due now for every topic the publisher knows.
func (c *chains) beatAll(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, t := range c.topics {
		if c.beating[topic] == nil {
			t.beats = heartbeatCount - 1
			c.beating[topic] = t
		}
		t.due = now
	}
}

// size is the number of topics with a chain, and of those with heartbeats due.
func (c *chains) size() (topics, beating int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.topics), len(c.beating)
}
