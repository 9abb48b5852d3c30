package wshub

import (
	"maps"
	"slices"
	"time"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Resync: when the subscriber reports that changes on some topics may have been missed
// (broker.Loss: a broken chain, a heartbeat naming a change that never came, a restarted
// publisher, a reconnection), every connection watching one of those topics is closed with
// CloseResync. Our pages' live.js reconnects at once and reloads the document over HTTP,
// so it ends at the stored state, whatever was lost.
//
// A page without live.js (BokehJS alone never reconnects) that subscribed to debug:debug,
// as every BokehJS page does, first gets the frame debug:debug:reload, on which BokehJS
// reloads the whole page (PROTOCOL.md §5.4). live.js holds that frame back when the close
// follows. Any other client is told by the close code and its reason.
//
// The ZeroMQ subscription of a resynced topic is held for ResyncHold, so that the chains
// followed on it carry on while the pages come back: a change missed after their reload is
// still seen as a gap. Holding it also spares the publishers a new subscription per page.
const (
	// CloseResync is the websocket close code of a resync (4000-4999: private use).
	CloseResync = 4001
	// closeResyncReason is its reason text.
	closeResyncReason = "resync: changes may have been missed, reload the document"
	// ResyncHold is how long a resynced topic stays subscribed without clients.
	ResyncHold = 30 * time.Second
)

// debugTopic is the topic every BokehJS page subscribes to; reloadFrame makes BokehJS
// reload the page.
const debugTopic = "debug:debug"

var reloadFrame = []byte(debugTopic + ":reload")

// lossReasons are the reasons counted, in the order of counters.resyncs.
var lossReasons = []broker.LossReason{broker.LossGap, broker.LossTail, broker.LossEpoch, broker.LossReconnect}

// resync handles a loss reported by the subscriber; it runs on the subscriber's goroutine
// and never blocks.
func (h *Hub) resync(l broker.Loss) {
	if i := slices.Index(lossReasons, l.Reason); i >= 0 {
		h.counters.resyncs[i].Add(1)
	}
	h.mu.Lock()
	topics := l.Topics
	if topics == nil {
		topics = slices.Collect(maps.Keys(h.topics))
	}
	closing := map[*client]bool{} // → the client watches debug:debug
	until := time.Now().Add(ResyncHold)
	affected := 0
	for _, topic := range topics {
		subs := h.topics[topic]
		if subs == nil {
			continue
		}
		affected++
		delete(h.topics, topic)
		h.held[topic] = until
		h.counters.subscriptions.Add(-int64(subs.live()))
		for _, c := range subs.all {
			if c.gone.Load() {
				continue
			}
			closing[c] = slices.Contains(c.topics, debugTopic)
			c.topics = slices.DeleteFunc(c.topics, func(t string) bool { return t == topic })
		}
	}
	h.mu.Unlock()
	for c, debug := range closing {
		var farewell []byte
		if debug {
			farewell = reloadFrame
		}
		c.closeWithFarewell(CloseResync, closeResyncReason, false, farewell)
	}
	h.counters.resyncCloses.Add(uint64(len(closing)))
	if ok, suppressed := h.resyncLog.Allow(time.Second); ok {
		h.log.Warn("resync: changes may have been missed; closing the connections that watch them, which reload",
			"reason", l.Reason, "topics", affected, "connections", len(closing), "suppressed", suppressed)
	}
}

// releaseHeld lets go of the subscriptions held past their time. The pinger calls it.
func (h *Hub) releaseHeld(now time.Time) {
	h.mu.Lock()
	var expired []string
	for topic, until := range h.held {
		if now.After(until) {
			delete(h.held, topic)
			expired = append(expired, topic)
		}
	}
	h.mu.Unlock()
	for _, topic := range expired {
		if _, err := h.syncTopic(topic); err != nil {
			h.log.Debug("zmq unsubscribe", "topic", topic, "err", err)
		}
	}
}
