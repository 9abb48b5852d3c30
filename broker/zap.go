package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/bokeh-go/bokeh-server/broker/ratelog"
)

// The ZAP handler (ZeroMQ RFC 27): libzmq asks it, over inproc, whether a client may finish
// a CURVE handshake with one of this process's server sockets. There is one per ZeroMQ
// context, so one per process; every server socket gets a ZAP domain of its own naming its
// allow-list. Like the other sockets it is served by a goroutine that never blocks inside
// libzmq (watch.go).

const zapEndpoint = "inproc://zeromq.zap.01"

var zap struct {
	once    sync.Once
	err     error
	mu      sync.Mutex
	domains map[string]map[string]bool // domain → allowed client public keys (Z85)
	next    uint64
	refused ratelog.Limiter
}

// zapAllow registers an allow-list and returns the ZAP domain that names it; release
// forgets it once its socket is closed.
func zapAllow(keys []string) (domain string, release func(), err error) {
	zap.once.Do(startZAP)
	if zap.err != nil {
		return "", nil, zap.err
	}
	allowed := make(map[string]bool, len(keys))
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return "", nil, fmt.Errorf("zmq curve allow-list: %w", err)
		}
		allowed[k] = true
	}
	zap.mu.Lock()
	defer zap.mu.Unlock()
	if zap.domains == nil {
		zap.domains = map[string]map[string]bool{}
	}
	zap.next++
	domain = fmt.Sprintf("bokeh-%d", zap.next)
	zap.domains[domain] = allowed
	return domain, func() {
		zap.mu.Lock()
		delete(zap.domains, domain)
		zap.mu.Unlock()
	}, nil
}

func startZAP() {
	sock, err := zmq.NewSocket(zmq.REP)
	if err != nil {
		zap.err = fmt.Errorf("zmq ZAP handler socket: %w", err)
		return
	}
	if err := sock.Bind(zapEndpoint); err != nil {
		sock.Close()
		zap.err = fmt.Errorf("zmq bind %s (another ZAP handler in this process?): %w", zapEndpoint, err)
		return
	}
	w, err := newSockWatcher(sock)
	if err != nil {
		sock.Close()
		zap.err = fmt.Errorf("zmq ZAP handler signal descriptor: %w", err)
		return
	}
	w.start(slog.Default(), "ZAP handler", zapEndpoint)
	go serveZAP(sock, w)
}

// serveZAP answers requests for the life of the process.
func serveZAP(sock *zmq.Socket, w *sockWatcher) {
	for range w.ready {
		for {
			req, err := sock.RecvMessageBytes(zmq.DONTWAIT)
			if err != nil {
				if !isAgain(err) {
					slog.Error("zmq ZAP handler: receive failed", "err", err)
				}
				break
			}
			if _, err := sock.SendMessageDontwait(zapReply(req)...); err != nil {
				slog.Error("zmq ZAP handler: reply failed", "err", err)
			}
		}
	}
}

// zapReply answers one request: [version, request id, domain, address, identity,
// mechanism, credentials...]. A CURVE client's credential is its 32-byte public key.
func zapReply(req [][]byte) []any {
	if len(req) < 6 {
		return []any{"1.0", "", "500", "malformed ZAP request", "", ""}
	}
	id, domain, address, mechanism := req[1], string(req[2]), string(req[3]), string(req[5])
	if string(req[0]) != "1.0" {
		return []any{"1.0", id, "500", "unknown ZAP version", "", ""}
	}
	if mechanism != "CURVE" || len(req) < 7 || len(req[6]) != 32 {
		return []any{"1.0", id, "400", "CURVE required", "", ""}
	}
	key := zmq.Z85encode(string(req[6]))
	zap.mu.Lock()
	ok := zap.domains[domain][key]
	zap.mu.Unlock()
	if !ok {
		if log, suppressed := zap.refused.Allow(time.Second); log {
			slog.Warn("zmq: refused a CURVE client whose public key is not allowed",
				"client", address, "key", key, "suppressed", suppressed)
		}
		return []any{"1.0", id, "400", "client key not allowed", "", ""}
	}
	return []any{"1.0", id, "200", "OK", key, ""}
}
