package broker

import (
	"errors"
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
	if len(parts) != 3 {
		if len(parts) == 2 && len(parts[1]) > 0 && parts[1][0] == '{' {
			s.otherFormat(VersionError{Version: 1})
			return
		}
		s.bad("expected 3 frames (topic, header, payload)", len(parts), nil)
		return
	}
	h, err := ParseHeader(parts[1])
	if err != nil {
		var ve VersionError
		if errors.As(err, &ve) {
			s.otherFormat(ve)
			return
		}
		s.bad("malformed header", len(parts[1]), err)
		return
	}
	if restarted := s.chains.publisher(h); len(restarted) > 0 {
		s.reportLoss(Loss{Reason: LossEpoch, Topics: restarted})
	}
	switch h.Kind {
	case MsgHello:
		s.hellos.Add(1)
		return
	case MsgAck:
		s.acks.Add(1)
		// Messages before the acknowledgement go out before it is seen: a client waiting
		// for it must not get them.
		s.flush()
		topic, ok := ackTopic(parts[0])
		if !ok {
			s.bad("malformed acknowledgement", len(parts[0]), nil)
			return
		}
		s.check(topic, h)
		s.handleAck(parts[0])
		return
	case MsgHeartbeat:
		s.heartbeats.Add(1)
	}
	// ZeroMQ matched a subscription as a byte prefix: "bokehplot:abc" also lets
	// "bokehplot:abcd" through, so check the exact topic.
	if !s.chains.followed(string(parts[0])) {
		s.filtered.Add(1)
		return
	}
	topic := string(parts[0])
	s.check(topic, h)
	if h.Kind != MsgChange {
		return
	}
	m := Message{Topic: topic, Payload: parts[2]}
	s.delivered.Add(1) // first, so that whoever sees the message sees the count
	if s.batch != nil {
		s.pending = append(s.pending, m)
		return
	}
	s.deliver(m)
}

// check follows h on topic's chain and reports a loss it reveals.
func (s *Subscriber) check(topic string, h Header) {
	if reason, lost := s.chains.observe(topic, h); lost {
		s.reportLoss(Loss{Reason: reason, Topics: []string{topic}})
	}
}

// handleAck takes the answer to one of our requests; answers to other subscribers'
// requests of a topic (ZeroMQ matches prefixes) and repeated answers are only heartbeats.
func (s *Subscriber) handleAck(request []byte) {
	topic, ok := s.ackWanted[string(request)]
	if !ok {
		return
	}
	if st := s.topics[topic]; !st.answered {
		st.answered = true
		close(st.acked)
	}
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

// otherFormat counts a message of another wire format and says so, once a minute.
func (s *Subscriber) otherFormat(err VersionError) {
	s.malformed.Add(1)
	if ok, suppressed := s.formatLog.Allow(time.Minute); ok {
		s.log.Error("zmq: a publisher speaks another wire format; its messages are dropped",
			"addr", s.addr, "publisher_format", err.Version, "worker_format", WireVersion,
			"fix", "run the same bokeh-server release on every machine", "suppressed", suppressed)
	}
}
