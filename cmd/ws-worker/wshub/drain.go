package wshub

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/gorilla/websocket"
)

// Shutdown refuses new connections and closes the open ones with 1001 "going away",
// spread evenly over the drain window so that thousands of browsers (or proxies) do not
// come back at the same instant. It then waits for the connections to finish, up to ctx,
// and closes the ZeroMQ subscriber.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.draining = true
	clients := slices.Collect(maps.Keys(h.clients))
	h.mu.Unlock()
	h.log.Info("draining websockets", "connections", len(clients), "window", h.cfg.DrainTimeout)
	h.spreadCloses(ctx, clients)

	finished := make(chan struct{})
	go func() {
		// A connection upgraded just before draining began registers (or is refused
		// with 1001) before its handshake ends; only then is conns complete.
		h.handshakes.Wait()
		h.conns.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range clients {
			c.nc.Close() // unblocks their writers at once
		}
	}
	h.cancel()
	h.poller.stop(h.pollDone)
	h.sub.Close()
	return err
}

func (h *Hub) spreadCloses(ctx context.Context, clients []*client) {
	window := h.cfg.DrainTimeout
	start := time.Now()
	tick := time.NewTicker(drainStep)
	defer tick.Stop()
	for closed := 0; closed < len(clients); {
		due := len(clients)
		if elapsed := time.Since(start); elapsed < window {
			due = 1 + int(int64(len(clients)-1)*int64(elapsed)/int64(window))
		}
		for ; closed < due; closed++ {
			clients[closed].closeWith(websocket.CloseGoingAway, "going away", false)
		}
		if closed == len(clients) {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			window = 0
		}
	}
}
