package wshub

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// counters are plain atomics, read by both /stats and /metrics so that the two always agree.
type counters struct {
	connections      atomic.Int64
	connectionsTotal atomic.Uint64
	subscriptions    atomic.Int64
	delivered        atomic.Uint64
	droppedMsgtype   atomic.Uint64 // non-modelpush frames on bokehplot topics (§5.4)
	droppedSlow      atomic.Uint64 // frames discarded with a slow client's queue
	droppedClosed    atomic.Uint64 // frames for a client already closing
	slowCloses       atomic.Uint64
	authFailures     atomic.Uint64
	unwatched        atomic.Uint64
	badFrames        atomic.Uint64
	ackTimeouts      atomic.Uint64    // subscriptions answered without the publisher's acknowledgement
	resyncs          [4]atomic.Uint64 // per lossReasons
	resyncCloses     atomic.Uint64
	refusedFull      atomic.Uint64 // handshakes refused at MaxConnections
}

// Stats is a snapshot of a hub's counters, served as JSON at /stats.
type Stats struct {
	ConnectionsCurrent int64  `json:"connections_current"`
	ConnectionsTotal   uint64 `json:"connections_total"`
	Subscriptions      int64  `json:"subscriptions"`
	ZMQTopics          int    `json:"zmq_topics"`
	ZMQReceived        uint64 `json:"zmq_received"`
	ZMQMalformed       uint64 `json:"zmq_malformed"`
	// Unwatched counts messages that reached the worker for a topic none of its clients
	// watches; ZeroMQ subscriptions keep it at 0 except for prefix collisions, races with
	// the last client leaving, and messages sent just before the acknowledgement of a
	// first client's subscription (the client joins at the acknowledgement).
	Unwatched        uint64 `json:"unwatched"`
	Delivered        uint64 `json:"delivered"`
	Dropped          uint64 `json:"dropped"`
	DroppedMsgtype   uint64 `json:"dropped_msgtype"`
	DroppedSlow      uint64 `json:"dropped_slow_client"`
	DroppedClosed    uint64 `json:"dropped_closed"`
	SlowClientCloses uint64 `json:"slow_client_closes"`
	AuthFailures     uint64 `json:"auth_failures"`
	BadClientFrames  uint64 `json:"bad_client_frames"`
	// SubscribeAckTimeouts counts subscribe replies sent without the publisher's
	// acknowledgement (none reachable within SubscribeAckTimeout); ZMQAcks counts the
	// acknowledgement frames received.
	SubscribeAckTimeouts uint64 `json:"subscribe_ack_timeouts"`
	ZMQAcks              uint64 `json:"zmq_acks"`
	// ZMQHeartbeats and ZMQHellos count the publishers' heartbeats and hellos received;
	// ZMQReconnects the new connections of the ZeroMQ socket after its first.
	ZMQHeartbeats uint64 `json:"zmq_heartbeats"`
	ZMQHellos     uint64 `json:"zmq_hellos"`
	ZMQReconnects uint64 `json:"zmq_reconnects"`
	// Resyncs counts the losses reported by the subscriber, per reason (gap, tail, epoch,
	// reconnect); ResyncCloses the connections closed to make their pages reload.
	Resyncs      map[string]uint64 `json:"resyncs"`
	ResyncCloses uint64            `json:"resync_closes"`
	// RefusedFull counts websocket handshakes refused (503) at the connection limit.
	RefusedFull uint64 `json:"refused_full"`
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	c := &h.counters
	sub := h.sub.Stats()
	h.subMu.Lock()
	zmqTopics := len(h.zmqTopics)
	h.subMu.Unlock()
	resyncs := make(map[string]uint64, len(lossReasons))
	for i, r := range lossReasons {
		resyncs[string(r)] = c.resyncs[i].Load()
	}
	s := Stats{
		ConnectionsCurrent: c.connections.Load(),
		ConnectionsTotal:   c.connectionsTotal.Load(),
		Subscriptions:      c.subscriptions.Load(),
		ZMQTopics:          zmqTopics,
		ZMQReceived:        sub.Received,
		ZMQMalformed:       sub.Malformed,
		Unwatched:          sub.Filtered + c.unwatched.Load(),
		Delivered:          c.delivered.Load(),
		DroppedMsgtype:     c.droppedMsgtype.Load(),
		DroppedSlow:        c.droppedSlow.Load(),
		DroppedClosed:      c.droppedClosed.Load(),
		SlowClientCloses:   c.slowCloses.Load(),
		AuthFailures:       c.authFailures.Load(),
		BadClientFrames:    c.badFrames.Load(),

		SubscribeAckTimeouts: c.ackTimeouts.Load(),
		ZMQAcks:              sub.Acks,
		ZMQHeartbeats:        sub.Heartbeats,
		ZMQHellos:            sub.Hellos,
		ZMQReconnects:        sub.Reconnects,
		Resyncs:              resyncs,
		ResyncCloses:         c.resyncCloses.Load(),
		RefusedFull:          c.refusedFull.Load(),
	}
	s.Dropped = s.DroppedMsgtype + s.DroppedSlow + s.DroppedClosed
	return s
}

// newRegistry exposes the counters on a registry of the hub's own, so that several hubs
// (tests) do not collide in the global one.
func (h *Hub) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stat := func(f func(Stats) float64) func() float64 { return func() float64 { return f(h.Stats()) } }
	gauge := func(name, help string, f func(Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, stat(f)))
	}
	counter := func(name, help string, labels prometheus.Labels, f func(Stats) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, stat(f)))
	}
	gauge("bokeh_ws_connections", "Open websocket connections.", func(s Stats) float64 { return float64(s.ConnectionsCurrent) })
	gauge("bokeh_ws_subscriptions", "Topic subscriptions of open connections.", func(s Stats) float64 { return float64(s.Subscriptions) })
	gauge("bokeh_ws_zmq_topics", "Topics the ZeroMQ socket is subscribed to.", func(s Stats) float64 { return float64(s.ZMQTopics) })
	counter("bokeh_ws_connections_total", "Websocket connections accepted.", nil, func(s Stats) float64 { return float64(s.ConnectionsTotal) })
	counter("bokeh_ws_zmq_received_total", "Messages received from ZeroMQ.", nil, func(s Stats) float64 { return float64(s.ZMQReceived) })
	counter("bokeh_ws_zmq_malformed_total", "ZeroMQ messages that failed to parse.", nil, func(s Stats) float64 { return float64(s.ZMQMalformed) })
	counter("bokeh_ws_unwatched_messages_total", "Messages received for topics no local client watches.", nil, func(s Stats) float64 { return float64(s.Unwatched) })
	counter("bokeh_ws_frames_delivered_total", "Published frames written to websockets.", nil, func(s Stats) float64 { return float64(s.Delivered) })
	for reason, f := range map[string]func(Stats) float64{
		"msgtype":     func(s Stats) float64 { return float64(s.DroppedMsgtype) },
		"slow_client": func(s Stats) float64 { return float64(s.DroppedSlow) },
		"closed":      func(s Stats) float64 { return float64(s.DroppedClosed) },
	} {
		counter("bokeh_ws_frames_dropped_total", "Published frames not delivered (exclusions not counted).", prometheus.Labels{"reason": reason}, f)
	}
	counter("bokeh_ws_slow_client_closes_total", "Connections closed for a full send queue or a write timeout.", nil, func(s Stats) float64 { return float64(s.SlowClientCloses) })
	counter("bokeh_ws_auth_failures_total", "Refused subscriptions.", nil, func(s Stats) float64 { return float64(s.AuthFailures) })
	counter("bokeh_ws_bad_client_frames_total", "Client frames that were not JSON objects with a msgtype.", nil, func(s Stats) float64 { return float64(s.BadClientFrames) })
	counter("bokeh_ws_subscribe_ack_timeouts_total", "Subscriptions answered before any publisher acknowledged them.", nil, func(s Stats) float64 { return float64(s.SubscribeAckTimeouts) })
	counter("bokeh_ws_zmq_acks_total", "Subscription acknowledgements received from ZeroMQ.", nil, func(s Stats) float64 { return float64(s.ZMQAcks) })
	counter("bokeh_ws_zmq_heartbeats_total", "Publisher heartbeats received from ZeroMQ.", nil, func(s Stats) float64 { return float64(s.ZMQHeartbeats) })
	counter("bokeh_ws_zmq_reconnects_total", "New connections of the ZeroMQ socket after its first.", nil, func(s Stats) float64 { return float64(s.ZMQReconnects) })
	for _, r := range lossReasons {
		counter("bokeh_resyncs_total", "Losses of published changes detected (gap, tail, epoch, reconnect); the pages watching the topics are made to reload.",
			prometheus.Labels{"reason": string(r)}, func(s Stats) float64 { return float64(s.Resyncs[string(r)]) })
	}
	counter("bokeh_ws_refused_full_total", "Websocket handshakes refused (503, Retry-After) at the connection limit.", nil, func(s Stats) float64 { return float64(s.RefusedFull) })
	counter("bokeh_ws_resync_closes_total", "Connections closed with code 4001 so that their pages reload.", nil, func(s Stats) float64 { return float64(s.ResyncCloses) })
	return reg
}
