package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bokeh-go/bokeh-server/broker/internal/ratelog"
	zmq "github.com/pebbe/zmq4"
)

// ZMQPublisher publishes messages on a ZeroMQ PUB socket as two frames: the topic (so
// subscribers filter by prefix inside ZeroMQ) and the §5.6 envelope.
//
// ZeroMQ sockets are not goroutine-safe, so one goroutine owns the socket and Publish only
// enqueues. Nothing the network does can block a caller: a full queue drops the message and
// counts it. Drops inside libzmq (one peer over its high-water mark) are invisible here.
type ZMQPublisher struct {
	sock     *zmq.Socket
	endpoint string
	log      *slog.Logger

	mu     sync.RWMutex // write-held only by Close, so no Publish enqueues after the drain
	closed bool
	queue  chan outgoing
	quit   chan struct{}
	done   chan struct{}

	published atomic.Uint64
	dropped   atomic.Uint64
	dropLog   ratelog.Limiter
}

// outgoing holds topic and envelope in one allocation; split is the topic length.
type outgoing struct {
	buf   []byte
	split int
}

// NewZMQPublisher binds or connects a PUB socket at addr. A "tcp://host:*" address binds
// a free port; Endpoint reports it.
func NewZMQPublisher(addr string, mode Mode, opts ...Option) (*ZMQPublisher, error) {
	o := buildOptions(opts)
	sock, err := newSocket(zmq.PUB, o)
	if err != nil {
		return nil, err
	}
	err = attach(sock, addr, mode, "is another bokeh-server running? use --zmqaddr")
	if err != nil {
		sock.Close()
		return nil, err
	}
	p := &ZMQPublisher{
		sock:     sock,
		endpoint: addr,
		log:      o.log,
		queue:    make(chan outgoing, o.queueSize),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if mode == Bind {
		p.endpoint = boundEndpoint(sock, addr)
	}
	go p.run()
	return p, nil
}

// Endpoint is the address the socket is bound or connected to.
func (p *ZMQPublisher) Endpoint() string { return p.endpoint }

// Publish enqueues m without blocking; it is dropped (and counted) when the queue is full,
// the topic is not <kind>:<value>, or the publisher is closed.
func (p *ZMQPublisher) Publish(m Message) {
	if !ValidTopic(m.Topic) {
		p.drop("invalid topic", m.Topic)
		return
	}
	// Encoding here, not in the socket goroutine, copies the payload before the caller can
	// reuse it and spreads the encoding cost over the publishing goroutines.
	buf := make([]byte, 0, len(m.Topic)+len(m.Payload)+len(m.Payload)/8+64)
	buf = append(buf, m.Topic...)
	buf = m.AppendEnvelope(buf)
	out := outgoing{buf: buf, split: len(m.Topic)}

	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.drop("publisher closed", m.Topic)
		return
	}
	select {
	case p.queue <- out:
	default:
		p.drop("queue full", m.Topic)
	}
}

func (p *ZMQPublisher) drop(reason, topic string) {
	p.dropped.Add(1)
	if ok, suppressed := p.dropLog.Allow(time.Second); ok {
		p.log.Warn("zmq publish dropped", "reason", reason, "topic", topic,
			"endpoint", p.endpoint, "suppressed", suppressed)
	}
}

// Stats reports messages handed to ZeroMQ and messages dropped before that.
func (p *ZMQPublisher) Stats() PublishStats {
	return PublishStats{Published: p.published.Load(), Dropped: p.dropped.Load()}
}

// Close sends what is already queued, then closes the socket; ZeroMQ keeps trying to
// deliver for at most the linger period. Later Publish calls drop.
func (p *ZMQPublisher) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	<-p.done
	return nil
}

func (p *ZMQPublisher) run() {
	defer close(p.done)
	defer p.sock.Close()
	for {
		select {
		case out := <-p.queue:
			p.send(out)
		case <-p.quit:
			// Close holds no lock now and closed is set, so the queue can only shrink.
			for {
				select {
				case out := <-p.queue:
					p.send(out)
				default:
					return
				}
			}
		}
	}
}

func (p *ZMQPublisher) send(out outgoing) {
	topic := out.buf[:out.split]
	// DONTWAIT: a PUB socket normally drops rather than blocks, but never risk stalling
	// the only goroutine that drains the queue.
	if _, err := p.sock.SendBytes(topic, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
		p.drop("zmq send: "+err.Error(), string(topic))
		return
	}
	if _, err := p.sock.SendBytes(out.buf[out.split:], zmq.DONTWAIT); err != nil {
		p.drop("zmq send: "+err.Error(), string(topic))
		return
	}
	p.published.Add(1)
}
