package broker

import (
	"runtime"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// receive takes the messages waiting on the SUB socket until EAGAIN, or recvBatch of them;
// then it asks to be called again, so that requests are not starved by a flood.
func (s *Subscriber) receive() {
	batchBytes := 0
	for range recvBatch {
		if batchBytes >= yieldBytes {
			// Let the goroutines that write what was delivered run before more is taken:
			// with one CPU, a backlog of large messages taken in one go would otherwise
			// pile up in the clients' send queues and trip their limits.
			if !s.flush() {
				runtime.Gosched()
			}
			batchBytes = 0
		}
		parts, err := s.recv.recv(zmq.DONTWAIT)
		if err != nil {
			if !isAgain(err) {
				if ok, suppressed := s.badLog.Allow(time.Second); ok {
					s.log.Error("zmq receive failed", "addr", s.addr, "err", err, "suppressed", suppressed)
				}
			}
			s.flush()
			return
		}
		s.handle(parts)
		for _, p := range parts {
			batchBytes += len(p)
		}
	}
	s.flush()
	s.watch.notify()
}

// flush hands the messages taken to a batch callback; when the callback reports a backlog
// it pauses (see backlogPause) and reports true.
func (s *Subscriber) flush() (paused bool) {
	if len(s.pending) == 0 {
		return false
	}
	backlog := s.batch(s.pending)
	clear(s.pending) // let the payloads go
	s.pending = s.pending[:0]
	if backlog {
		time.Sleep(backlogPause)
	}
	return backlog
}

func (s *Subscriber) handle(parts [][]byte) {
	s.received.Add(1)
	if len(parts) != 2 {
		s.bad("expected 2 frames (topic, envelope)", len(parts), nil)
		return
	}
	if isAckTopic(parts[0]) {
		// Messages before the acknowledgement go out before it is seen: a client waiting
		// for it must not get them.
		s.flush()
		s.handleAck(parts)
		return
	}
	// ZeroMQ matched a subscription as a byte prefix: "bokehplot:abc" also lets
	// "bokehplot:abcd" through, so check the exact topic.
	if _, ok := s.topics[string(parts[0])]; !ok {
		s.filtered.Add(1)
		return
	}
	// The frame is ours (ZeroMQ's data was copied into it): decode it in place.
	m, err := parseEnvelope(parts[1], true)
	if err != nil {
		s.bad("malformed envelope", len(parts[1]), err)
		return
	}
	if m.Topic != string(parts[0]) {
		s.bad("envelope topic differs from topic frame", len(parts[1]), nil)
		return
	}
	s.delivered.Add(1) // first, so that whoever sees the message sees the count
	if s.batch != nil {
		s.pending = append(s.pending, m)
		return
	}
	s.deliver(m)
}

// handleAck takes an acknowledgement: it may answer one of our requests, or one of another
// subscriber of a topic we share a prefix with, or a request answered already by another
// publisher.
func (s *Subscriber) handleAck(parts [][]byte) {
	s.acks.Add(1)
	topic, ok := s.ackWanted[string(parts[0])]
	if !ok {
		return
	}
	m, err := ParseEnvelope(parts[1])
	if err != nil || !m.Ack || m.Topic != topic {
		s.bad("malformed acknowledgement", len(parts[1]), err)
		return
	}
	st := s.topics[topic]
	s.forgetRequest(st)
	close(st.acked)
}

// bad counts a malformed message and logs it, at most once a second so that a broken
// publisher cannot flood the log.
func (s *Subscriber) bad(why string, size int, err error) {
	s.malformed.Add(1)
	if ok, suppressed := s.badLog.Allow(time.Second); ok {
		s.log.Warn("zmq message dropped", "reason", why, "size", size, "err", err,
			"addr", s.addr, "suppressed", suppressed)
	}
}
