package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Shelve is the "shelve" backend: one embedded bbolt file. The original's Python shelve files
// cannot reasonably be read from Go, so old shelve data is not migrated; only the name and
// the role (single-process, on-disk, no server to run) carry over.
//
// File layout (all buckets nested, keys and values raw bytes):
//
//	models/<docid>/<type>:<id>            attrs JSON text
//	overlays/<docid>:<temp>/<type>:<id>   attrs JSON text of a viewer's overlay
//	overlay-expiry/<docid>:<temp>         expiry, big-endian Unix nanoseconds
//	records/model:doc:<docid>             Doc JSON
//	records/model:user:<username>         User JSON
//	doc-expiry, doc-expiry-order          documents' due times (expiry_shelve.go)
type Shelve struct {
	recordAccess // Doc, PutDoc, User, PutUser, CreateUser over loadRecord and storeRecord

	db   *bolt.DB
	path string
	ttl  time.Duration
	now  func() time.Time // time.Now; tests move it to expire overlays without sleeping

	sweepMu   sync.Mutex
	lastSweep time.Time
}

var _ Store = (*Shelve)(nil)

var (
	bucketModels        = []byte("models")
	bucketOverlays      = []byte("overlays")
	bucketOverlayExpiry = []byte("overlay-expiry")
	bucketRecords       = []byte("records")
)

const (
	// shelveLockTimeout bounds the wait for the file lock: bbolt would otherwise block
	// forever when another bokeh-server has the file open.
	shelveLockTimeout = time.Second
	// shelveBatchDelay is how long a write waits for others to share its fsync. bbolt's
	// 10 ms default would be added to every lone interactive write.
	shelveBatchDelay = 2 * time.Millisecond
)

// OpenShelve opens (creating if needed) the bbolt file at path. Overlays expire overlayTTL
// after their last write (DefaultOverlayTTL if overlayTTL <= 0).
func OpenShelve(path string, overlayTTL time.Duration) (*Shelve, error) {
	if overlayTTL <= 0 {
		overlayTTL = DefaultOverlayTTL
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: shelveLockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("shelve: data file %s is in use by another bokeh-server: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("shelve: open data file %s: %w", path, err)
	}
	db.MaxBatchDelay = shelveBatchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketModels, bucketOverlays, bucketOverlayExpiry, bucketRecords,
			bucketDocExpiry, bucketDocExpiryOrder} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("shelve: initialise data file %s: %w", path, err)
	}
	s := &Shelve{db: db, path: path, ttl: overlayTTL, now: time.Now, lastSweep: time.Now()}
	s.recordAccess = recordAccess{kv: s, name: "shelve"}
	return s, nil
}

// Path returns the data file's path.
func (s *Shelve) Path() string { return s.path }

// overlayName names an overlay's bucket; temp has no ':', so the last ':' separates.
func overlayName(scope Scope) []byte { return []byte(scope.DocID + ":" + scope.Temp) }

// scopeBucket returns scope's live model bucket, or nil if it holds nothing.
func scopeBucket(tx *bolt.Tx, scope Scope, now time.Time) *bolt.Bucket {
	if !scope.IsOverlay() {
		return tx.Bucket(bucketModels).Bucket([]byte(scope.DocID))
	}
	name := overlayName(scope)
	exp := tx.Bucket(bucketOverlayExpiry).Get(name)
	if len(exp) != 8 || !now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(exp)))) {
		return nil
	}
	return tx.Bucket(bucketOverlays).Bucket(name)
}

// Models implements Models.
func (s *Shelve) Models(_ context.Context, scope Scope) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("shelve: models: %w", err)
	}
	var out []Model
	err := s.db.View(func(tx *bolt.Tx) error {
		b := scopeBucket(tx, scope, s.now())
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if key, ok := parseModelField(string(k)); ok && v != nil {
				out = append(out, Model{Type: key.Type, ID: key.ID, Attrs: bytes.Clone(v)})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("shelve: models of %s: %w", scope, err)
	}
	return out, nil
}

// GetModels implements Models.
func (s *Shelve) GetModels(_ context.Context, scope Scope, keys []ModelKey) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("shelve: get models: %w", err)
	}
	var out []Model
	err := s.db.View(func(tx *bolt.Tx) error {
		b := scopeBucket(tx, scope, s.now())
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if !validKey(k) {
				continue
			}
			if v := b.Get([]byte(modelField(k))); v != nil {
				out = append(out, Model{Type: k.Type, ID: k.ID, Attrs: bytes.Clone(v)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shelve: get models of %s: %w", scope, err)
	}
	return out, nil
}

// PutModels implements Models.
func (s *Shelve) PutModels(_ context.Context, scope Scope, models []Model) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("shelve: put models: %w", err)
	}
	if err := checkModels(models); err != nil {
		return fmt.Errorf("shelve: put models: %w", err)
	}
	if len(models) == 0 {
		return nil
	}
	now := s.now()
	sweep := scope.IsOverlay() && s.sweepDue(now)
	// Batch may run fn more than once (after another caller's failure), so fn must only
	// write to tx.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b, err := s.writableBucket(tx, scope, now)
		if err != nil {
			return err
		}
		for _, m := range models {
			if err := b.Put([]byte(modelField(m.Key())), m.Attrs); err != nil {
				return fmt.Errorf("%s:%s: %w", m.Type, m.ID, err)
			}
		}
		if sweep {
			return sweepOverlays(tx, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("shelve: put models of %s: %w", scope, err)
	}
	return nil
}

// writableBucket returns scope's bucket for a write, creating it, and for an overlay
// starts afresh if it had expired and pushes its expiry out to now+ttl.
func (s *Shelve) writableBucket(tx *bolt.Tx, scope Scope, now time.Time) (*bolt.Bucket, error) {
	if !scope.IsOverlay() {
		return tx.Bucket(bucketModels).CreateBucketIfNotExists([]byte(scope.DocID))
	}
	name := overlayName(scope)
	overlays := tx.Bucket(bucketOverlays)
	if scopeBucket(tx, scope, now) == nil && overlays.Bucket(name) != nil {
		if err := overlays.DeleteBucket(name); err != nil {
			return nil, fmt.Errorf("drop expired overlay: %w", err)
		}
	}
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(now.Add(s.ttl).UnixNano()))
	if err := tx.Bucket(bucketOverlayExpiry).Put(name, exp[:]); err != nil {
		return nil, fmt.Errorf("overlay expiry: %w", err)
	}
	return overlays.CreateBucketIfNotExists(name)
}

// sweepDue reports whether this write should also drop expired overlays (see Memory.sweep).
func (s *Shelve) sweepDue(now time.Time) bool {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if now.Sub(s.lastSweep) < sweepEvery(s.ttl) {
		return false
	}
	s.lastSweep = now
	return true
}

// sweepOverlays deletes every overlay that expired before now.
func sweepOverlays(tx *bolt.Tx, now time.Time) error {
	expiry, overlays := tx.Bucket(bucketOverlayExpiry), tx.Bucket(bucketOverlays)
	var dead [][]byte
	err := expiry.ForEach(func(k, v []byte) error {
		if len(v) != 8 || !now.Before(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) {
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep overlays: %w", err)
	}
	for _, name := range dead {
		if err := expiry.Delete(name); err != nil {
			return fmt.Errorf("sweep overlays: %w", err)
		}
		if overlays.Bucket(name) == nil {
			continue
		}
		if err := overlays.DeleteBucket(name); err != nil {
			return fmt.Errorf("sweep overlays: %w", err)
		}
	}
	return nil
}

// DeleteModels implements Models.
func (s *Shelve) DeleteModels(_ context.Context, scope Scope, keys []ModelKey) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("shelve: delete models: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := scopeBucket(tx, scope, s.now())
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if !validKey(k) {
				continue
			}
			if err := b.Delete([]byte(modelField(k))); err != nil {
				return fmt.Errorf("%s:%s: %w", k.Type, k.ID, err)
			}
		}
		// An emptied document's bucket would otherwise stay in the file forever; emptied
		// overlays are left to the sweep with their expiry entry.
		if k, _ := b.Cursor().First(); k == nil && !scope.IsOverlay() {
			return tx.Bucket(bucketModels).DeleteBucket([]byte(scope.DocID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("shelve: delete models of %s: %w", scope, err)
	}
	return nil
}

func (s *Shelve) loadRecord(_ context.Context, kind, id string) ([]byte, error) {
	var text []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		// The value is valid only inside the transaction: keep a copy.
		text = bytes.Clone(tx.Bucket(bucketRecords).Get([]byte(recordKey(kind, id))))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shelve: read %s %q: %w", kind, id, err)
	}
	if text == nil {
		return nil, fmt.Errorf("shelve: %s %q: %w", kind, id, ErrNotFound)
	}
	return text, nil
}

// storeRecord checks and writes in one transaction.
func (s *Shelve) storeRecord(_ context.Context, kind, id string, text []byte, onlyNew bool) (created bool, err error) {
	key := []byte(recordKey(kind, id))
	// "Exists" is reported through created rather than as fn's error: a failing fn makes
	// Batch roll back and re-run everyone else's writes.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		created = !onlyNew || b.Get(key) == nil
		if !created {
			return nil
		}
		return b.Put(key, text)
	})
	if err != nil {
		return false, fmt.Errorf("shelve: write %s %q: %w", kind, id, err)
	}
	return created, nil
}

// Ping implements Store; it fails once the file is closed.
func (s *Shelve) Ping(context.Context) error {
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("shelve: %s: %w", s.path, err)
	}
	return nil
}

// Close implements Store, releasing the file lock.
func (s *Shelve) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("shelve: close %s: %w", s.path, err)
	}
	return nil
}
