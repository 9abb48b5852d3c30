package api

import (
	"context"
	"fmt"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Applet pages make one document per view; the original kept them all. Here each expires
// AppletTTL after its last use (page view or callback) and is deleted by the sweep below.
const (
	// docSweepBatch is how many expired documents one storage call claims.
	docSweepBatch = 100
	// docSweepMax is the longest pause between sweeps.
	docSweepMax = time.Minute
)

// RunDocExpiry deletes expired documents (storage.DocExpiry) until ctx ends, sweeping
// every half TTL, at most a minute apart. Several API processes may run it on one store:
// each document is claimed by one.
func (s *Server) RunDocExpiry(ctx context.Context) {
	ttl := s.cfg.AppletTTL
	if ttl <= 0 {
		ttl = storage.DefaultOverlayTTL
	}
	t := time.NewTicker(min(max(ttl/2, 100*time.Millisecond), docSweepMax))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n, err := s.SweepExpiredDocs(ctx, now); err != nil {
				s.log.Warn("deleting expired documents", "deleted", n, "err", err)
			} else if n > 0 {
				s.log.Info("deleted expired applet documents", "count", n)
			}
		}
	}
}

// SweepExpiredDocs deletes every document due at now and returns how many it deleted.
func (s *Server) SweepExpiredDocs(ctx context.Context, now time.Time) (int, error) {
	deleted := 0
	for {
		ids, err := s.store.ClaimExpiredDocs(ctx, now, docSweepBatch)
		if err != nil {
			return deleted, err
		}
		for _, id := range ids {
			if err := s.store.DeleteDoc(ctx, id); err != nil {
				return deleted, fmt.Errorf("delete document %s: %w", id, err)
			}
			s.docs.drop(id)
			deleted++
		}
		if len(ids) < docSweepBatch {
			return deleted, nil
		}
	}
}
