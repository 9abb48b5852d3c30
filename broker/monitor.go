package broker

import (
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker/ratelog"
)

// connMonitor tells a Subscriber when its connection to the publisher (or forwarder) breaks
// and is made again, through libzmq's socket monitor: events arrive on a PAIR socket, read
// by the subscriber's goroutine when the watcher signals.
type connMonitor struct {
	sub   *zmq.Socket // the socket watched
	sock  *zmq.Socket
	watch *sockWatcher

	connections int  // HANDSHAKE_SUCCEEDED events so far
	down        bool // a DISCONNECTED event came since the last handshake
	refused     ratelog.Limiter
}

// monitorEvents are the events watched. A connection counts once its ZMTP handshake
// (CURVE's included) succeeded: a refused handshake is logged, not taken for a
// reconnection.
const monitorEvents = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED |
	zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL

func newConnMonitor(sub *zmq.Socket) (*connMonitor, error) {
	addr := inprocName("sub-monitor")
	if err := sub.Monitor(addr, monitorEvents); err != nil {
		return nil, fmt.Errorf("zmq socket monitor: %w", err)
	}
	m := &connMonitor{sub: sub}
	var err error
	if m.sock, err = zmq.NewSocket(zmq.PAIR); err != nil {
		sub.Monitor("", 0)
		return nil, fmt.Errorf("zmq monitor socket: %w", err)
	}
	if err = m.sock.Connect(addr); err != nil {
		m.close()
		return nil, fmt.Errorf("zmq connect %s: %w", addr, err)
	}
	if m.watch, err = newSockWatcher(m.sock); err != nil {
		m.close()
		return nil, fmt.Errorf("zmq monitor signal descriptor: %w", err)
	}
	return m, nil
}

// close stops the monitor before the watched socket is closed: closed the other way round,
// libzmq never reaped the sockets (three descriptors leaked per subscriber).
func (m *connMonitor) close() {
	m.sub.Monitor("", 0)
	if m.watch != nil {
		m.watch.stop()
	}
	m.sock.SetLinger(0)
	m.sock.Close()
}

// monitorEvents reads the monitor's events until EAGAIN (watch.go) and handles them.
func (s *Subscriber) monitorEvents() {
	m := s.monitor
	for {
		ev, peer, _, err := m.sock.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			if !isAgain(err) {
				if ok, suppressed := s.badLog.Allow(time.Second); ok {
					s.log.Error("zmq socket monitor failed", "addr", s.addr, "err", err, "suppressed", suppressed)
				}
			}
			return
		}
		switch ev {
		case zmq.EVENT_DISCONNECTED:
			if !m.down {
				s.log.Warn("zmq subscriber lost its connection; reconnecting", "addr", s.addr, "peer", peer)
			}
			m.down = true
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			m.connections++
			if m.connections > 1 || m.down {
				s.reconnected(peer)
			}
			m.down = false
		default: // a failed handshake
			if ok, suppressed := m.refused.Allow(time.Minute); ok {
				s.log.Error("zmq: the publisher refused this subscriber's handshake; with CURVE, check that its public key is in the publisher's allow-list (--zmq-curve-allow) and that --zmq-curve-server-key is the publisher's",
					"addr", s.addr, "peer", peer, "event", ev.String(), "suppressed", suppressed)
			}
		}
	}
}
