package wshub

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// handshakeTimeout bounds a websocket upgrade.
const handshakeTimeout = 10 * time.Second

// Handler serves websockets at prefix/bokeh/sub and prefix/bokeh/sub/ (0.7/0.8 and 0.6.1
// forms, §1.5), and /healthz, /metrics and /stats. prefix is "" or starts with "/" and has
// no trailing "/".
func (h *Hub) Handler(prefix string) http.Handler {
	sub := prefix + "/bokeh/sub"
	metrics := promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{})
	upgrader := &websocket.Upgrader{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   128, // client frames are small subscribe requests (gorilla's least is 125)
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{}, // idle connections hold no write buffer
		CheckOrigin:      h.checkOrigin,
	}
	// Matching paths by hand, not with ServeMux patterns, keeps an odd prefix from
	// being read as a pattern.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case sub, sub + "/":
			h.serveWebsocket(upgrader, w, r)
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok"))
		case "/metrics":
			metrics.ServeHTTP(w, r)
		case "/stats":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(h.Stats())
		default:
			http.NotFound(w, r)
		}
	})
}

// checkOrigin accepts any Origin unless an allow-list is configured; requests without an
// Origin (not from a browser) are always accepted, since such clients can send any Origin.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(h.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	if slices.Contains(h.cfg.AllowedOrigins, strings.ToLower(origin)) {
		return true
	}
	h.log.Info("websocket origin refused", "origin", origin, "remote", r.RemoteAddr)
	return false
}

// retryAfter is the Retry-After of a refused websocket: a restarting or full worker.
const retryAfter = "1"

// refuse answers a handshake with 503 and a retry hint, and closes the connection so that
// its file is free at once.
func refuse(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", retryAfter)
	w.Header().Set("Connection", "close")
	http.Error(w, why, http.StatusServiceUnavailable)
}

func (h *Hub) serveWebsocket(upgrader *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	draining := h.draining
	full := h.cfg.MaxConnections > 0 && int(h.counters.connections.Load())+h.upgrading >= h.cfg.MaxConnections
	if !draining && !full {
		h.handshakes.Add(1)
		h.upgrading++
	}
	h.mu.Unlock()
	switch {
	case draining:
		refuse(w, "shutting down")
		return
	case full:
		h.counters.refusedFull.Add(1)
		if ok, suppressed := h.fullLog.Allow(time.Second); ok {
			h.log.Warn("websocket refused: connection limit reached (--max-connections)",
				"limit", h.cfg.MaxConnections, "suppressed", suppressed)
		}
		refuse(w, "this worker is full; retry (another worker may be given)")
		return
	}
	// Done runs after conns.Add below, so Shutdown never misses this connection.
	defer h.handshakes.Done()
	defer func() {
		h.mu.Lock()
		h.upgrading--
		h.mu.Unlock()
	}()
	conn, err := upgrader.Upgrade(w, r, nil) // answers failed handshakes itself
	if err != nil {
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// From here on the hub reads and writes the socket itself; gorilla's connection (and
	// its buffer, empty: gorilla refuses data sent before the handshake completed) goes.
	nc := conn.NetConn()
	c, err := newClient(h, nc, uuid.NewString())
	if err != nil {
		h.log.Warn("websocket refused", "err", err)
		nc.Close()
		return
	}
	if !h.register(c) {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "going away")
		nc.SetWriteDeadline(time.Now().Add(closeGrace))
		nc.Write(append(appendHeader(nil, opClose, len(msg)), msg...))
		nc.Close()
		return
	}
	c.logger().Debug("websocket open", "path", r.URL.Path)
	h.conns.Add(1) // done when both reading and the close are over (client.end)
	if err := h.poller.add(c); err != nil {
		c.logger().Warn("cannot read websocket", "err", err)
		c.closeWith(websocket.CloseInternalServerErr, "", false)
		c.readEnded()
	}
}
