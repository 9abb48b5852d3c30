package broker

import (
	"time"

	zmq "github.com/pebbe/zmq4"
)

// receive takes the messages waiting on the SUB socket, up to recvBatch.
func (s *Subscriber) receive() {
	for range recvBatch {
		parts, err := s.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if !isAgain(err) {
				s.log.Error("zmq receive failed", "addr", s.addr, "err", err)
			}
			return
		}
		s.handle(parts)
	}
}

func (s *Subscriber) handle(parts [][]byte) {
	s.received.Add(1)
	if len(parts) != 2 {
		s.bad("expected 2 frames (topic, envelope)", len(parts), nil)
		return
	}
	// ZeroMQ matched a subscription as a byte prefix: "bokehplot:abc" also lets
	// "bokehplot:abcd" through, so check the exact topic.
	if _, ok := s.topics[string(parts[0])]; !ok {
		s.filtered.Add(1)
		return
	}
	m, err := ParseEnvelope(parts[1])
	if err != nil {
		s.bad("malformed envelope", len(parts[1]), err)
		return
	}
	if m.Topic != string(parts[0]) {
		s.bad("envelope topic differs from topic frame", len(parts[1]), nil)
		return
	}
	s.deliver(m)
	s.delivered.Add(1)
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
