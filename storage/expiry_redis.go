package storage

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Document expiry in redis: a sorted set in the records database, docid scored by its due
// time in Unix milliseconds. Overlays of a deleted document expire by their own TTL.
const redisDocExpiryKey = "bokeh-go:doc-expiry"

var (
	// extendScript moves a due time only if the document has one.
	extendScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`)
	// claimScript takes the due documents off the schedule in one step, so that of several
	// API processes sweeping at once only one gets each.
	claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return ids`)
)

// SetDocExpiry implements DocExpiry.
func (r *Redis) SetDocExpiry(ctx context.Context, docid string, at time.Time) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("redis: set doc expiry: %w", err)
	}
	err := r.write(ctx, r.records, func(c redis.Cmdable) error {
		return c.ZAdd(ctx, redisDocExpiryKey, redis.Z{Score: float64(at.UnixMilli()), Member: docid}).Err()
	})
	if err != nil {
		return r.wrap("set expiry of doc "+docid, err)
	}
	return nil
}

// ExtendDocExpiry implements DocExpiry.
func (r *Redis) ExtendDocExpiry(ctx context.Context, docid string, at time.Time) (bool, error) {
	if docid == "" {
		return false, nil
	}
	var n int
	err := r.write(ctx, r.records, func(c redis.Cmdable) (err error) {
		n, err = extendScript.Run(ctx, c, []string{redisDocExpiryKey}, at.UnixMilli(), docid).Int()
		return err
	})
	if err != nil {
		return false, r.wrap("extend expiry of doc "+docid, err)
	}
	return n == 1, nil
}

// ClaimExpiredDocs implements DocExpiry.
func (r *Redis) ClaimExpiredDocs(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	// Not through r.write: a claim undone by a failover only makes the document due again,
	// while one refused after the fact would leave it claimed and never deleted.
	ids, err := claimScript.Run(ctx, r.records, []string{redisDocExpiryKey},
		strconv.FormatInt(now.UnixMilli(), 10), limit).StringSlice()
	if err != nil {
		return nil, r.wrap("claim expired docs", err)
	}
	return ids, nil
}

// DeleteDoc implements DocExpiry: the models and their set, then the record and expiry.
func (r *Redis) DeleteDoc(ctx context.Context, docid string) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("redis: delete doc: %w", err)
	}
	op := "delete doc " + docid
	set := docSetKey(docid)
	members, err := r.models.SMembers(ctx, set).Result()
	if err != nil {
		return r.wrap(op, err)
	}
	// The sweeper's deletes, like its claims, wait for no replica: nobody is answered, and a
	// document a failover brings back is only deleted again.
	if err := r.models.Del(ctx, append(members, set)...).Err(); err != nil {
		return r.wrap(op, err)
	}
	pipe := r.records.TxPipeline()
	pipe.Del(ctx, recordKey("doc", docid))
	pipe.ZRem(ctx, redisDocExpiryKey, docid)
	if _, err := pipe.Exec(ctx); err != nil {
		return r.wrap(op, err)
	}
	return nil
}
