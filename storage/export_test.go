package storage

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// SetClock replaces the clock by which a Memory or Shelve expires overlays.
func SetClock(s Store, now func() time.Time) {
	switch s := s.(type) {
	case *Memory:
		s.mu.Lock()
		s.now, s.lastSweep = now, now()
		s.mu.Unlock()
	case *Shelve:
		s.sweepMu.Lock()
		s.now, s.lastSweep = now, now()
		s.sweepMu.Unlock()
	default:
		panic("SetClock: no clock in this backend")
	}
}

// OverlayCount is how many overlays a Memory or Shelve holds, expired or not.
func OverlayCount(s Store) int {
	switch s := s.(type) {
	case *Memory:
		s.mu.RLock()
		defer s.mu.RUnlock()
		return len(s.overlays)
	case *Shelve:
		n := 0
		_ = s.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketOverlays).Stats().BucketN - 1 // Stats counts the bucket itself
			if m := tx.Bucket(bucketOverlayExpiry).Stats().KeyN; m != n {
				n = -1 // buckets and expiry entries out of step
			}
			return nil
		})
		return n
	}
	panic("OverlayCount: not an embedded backend")
}
