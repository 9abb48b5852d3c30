package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Document expiry in the bbolt file:
//
//	doc-expiry/<docid>                       due time, big-endian Unix nanoseconds
//	doc-expiry-order/<due time><docid>       empty: the same entries in due order
var (
	bucketDocExpiry      = []byte("doc-expiry")
	bucketDocExpiryOrder = []byte("doc-expiry-order")
)

func expiryOrderKey(at []byte, docid string) []byte {
	return append(append(make([]byte, 0, len(at)+len(docid)), at...), docid...)
}

func unixNanoBytes(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	return b[:]
}

// setExpiry replaces docid's due time (onlyExisting: only if it has one).
func setExpiry(tx *bolt.Tx, docid string, at time.Time, onlyExisting bool) (bool, error) {
	exp, order := tx.Bucket(bucketDocExpiry), tx.Bucket(bucketDocExpiryOrder)
	old := exp.Get([]byte(docid))
	if old == nil && onlyExisting {
		return false, nil
	}
	if old != nil {
		if err := order.Delete(expiryOrderKey(old, docid)); err != nil {
			return false, err
		}
	}
	t := unixNanoBytes(at)
	if err := exp.Put([]byte(docid), t); err != nil {
		return false, err
	}
	return true, order.Put(expiryOrderKey(t, docid), []byte{})
}

// SetDocExpiry implements DocExpiry.
func (s *Shelve) SetDocExpiry(_ context.Context, docid string, at time.Time) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("shelve: set doc expiry: %w", err)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		_, err := setExpiry(tx, docid, at, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("shelve: set expiry of doc %s: %w", docid, err)
	}
	return nil
}

// ExtendDocExpiry implements DocExpiry.
func (s *Shelve) ExtendDocExpiry(_ context.Context, docid string, at time.Time) (bool, error) {
	if docid == "" {
		return false, nil
	}
	var had bool
	err := s.db.Batch(func(tx *bolt.Tx) error {
		var err error
		had, err = setExpiry(tx, docid, at, true)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("shelve: extend expiry of doc %s: %w", docid, err)
	}
	return had, nil
}

// ClaimExpiredDocs implements DocExpiry.
func (s *Shelve) ClaimExpiredDocs(_ context.Context, now time.Time, limit int) ([]string, error) {
	end := unixNanoBytes(now)
	// Most sweeps find nothing due; a read transaction costs no write to the file.
	anyDue := false
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketDocExpiryOrder).Cursor().First()
		anyDue = k != nil && len(k) >= 8 && bytes.Compare(k[:8], end) <= 0
		return nil
	})
	if err != nil || !anyDue || limit <= 0 {
		return nil, err
	}
	var due []string
	// Update, not Batch: Batch may run the function twice, claiming twice.
	err = s.db.Update(func(tx *bolt.Tx) error {
		due = due[:0]
		exp, order := tx.Bucket(bucketDocExpiry), tx.Bucket(bucketDocExpiryOrder)
		var keys [][]byte
		c := order.Cursor()
		for k, _ := c.First(); k != nil && len(due) < limit; k, _ = c.Next() {
			if len(k) < 8 || bytes.Compare(k[:8], end) > 0 {
				break
			}
			keys = append(keys, bytes.Clone(k))
			due = append(due, string(k[8:]))
		}
		for i, k := range keys {
			if err := order.Delete(k); err != nil {
				return err
			}
			if err := exp.Delete([]byte(due[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shelve: claim expired docs: %w", err)
	}
	return due, nil
}

// DeleteDoc implements DocExpiry; the document's overlays go at once.
func (s *Shelve) DeleteDoc(_ context.Context, docid string) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("shelve: delete doc: %w", err)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if old := tx.Bucket(bucketDocExpiry).Get([]byte(docid)); old != nil {
			if err := tx.Bucket(bucketDocExpiryOrder).Delete(expiryOrderKey(old, docid)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketDocExpiry).Delete([]byte(docid)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketRecords).Delete([]byte(recordKey("doc", docid))); err != nil {
			return err
		}
		models := tx.Bucket(bucketModels)
		if models.Bucket([]byte(docid)) != nil {
			if err := models.DeleteBucket([]byte(docid)); err != nil {
				return err
			}
		}
		// Overlay buckets are named <docid>:<temp>.
		overlays, expiry := tx.Bucket(bucketOverlays), tx.Bucket(bucketOverlayExpiry)
		prefix := []byte(docid + ":")
		var names [][]byte
		c := expiry.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			// A temp has no ':'; "<docid>:x:t" is an overlay of the document "<docid>:x".
			if !bytes.ContainsRune(k[len(prefix):], ':') {
				names = append(names, bytes.Clone(k))
			}
		}
		for _, name := range names {
			if err := expiry.Delete(name); err != nil {
				return err
			}
			if overlays.Bucket(name) != nil {
				if err := overlays.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("shelve: delete doc %s: %w", docid, err)
	}
	return nil
}
