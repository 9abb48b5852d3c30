package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// The original server's databases (PROTOCOL.md §4.2): the layout in them is shared with it
// byte for byte, so the same redis can be served by either.
const (
	redisModelDB  = 2 // bbmodel:<type>:<docid>:<id> STRING attrs; doc:<docid> SET of those keys
	redisRecordDB = 3 // model:doc:<docid>, model:user:<username> STRING record JSON
)

// Redis is the "redis" backend. Documents and records use the original's keys; overlays
// are this server's own: HASH overlay:<docid>:<temp> in db 2, field <type>:<id> → attrs,
// expiring OverlayTTL after its last write.
type Redis struct {
	recordAccess // Doc, PutDoc, User, PutUser, CreateUser over loadRecord and storeRecord

	addr    string // or the master and sentinels, for messages
	ttl     time.Duration
	models  *redis.Client // db 2
	records *redis.Client // db 3

	waitReplicas int // RedisConfig.WaitReplicas
	waitTimeout  time.Duration
}

var _ Store = (*Redis)(nil)

// errNotReplicated marks a write that is on the master but was not confirmed by as many
// replicas as RedisConfig.WaitReplicas asks within WaitTimeout.
var errNotReplicated = errors.New("not confirmed by enough replicas")

// NewRedis connects to redis and checks both databases answer. A failure that means redis
// is not reachable (yet) matches ErrUnavailable, so a caller that just started redis may
// retry.
func NewRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Redis{
		addr:         cfg.describe(),
		ttl:          cfg.OverlayTTL,
		models:       cfg.newClient(redisModelDB),
		records:      cfg.newClient(redisRecordDB),
		waitReplicas: cfg.WaitReplicas,
		waitTimeout:  cfg.WaitTimeout,
	}
	r.recordAccess = recordAccess{kv: r, name: "redis " + r.addr}
	if err := r.Ping(ctx); err != nil {
		_ = r.Close()
		switch {
		case redis.IsAuthError(err):
			return nil, fmt.Errorf("%w (wrong or missing password: see --redis-password-file and, with sentinels, --redis-sentinel-password-file)", err)
		case cfg.usesSentinel() && errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("redis: no sentinel of %s knows a master named %q (their \"sentinel monitor\" lines name it)",
				strings.Join(cfg.SentinelAddrs, ","), cfg.MasterName)
		}
		return nil, err
	}
	return r, nil
}

// Addr returns the address of the redis server (with sentinels: the master's name and the
// sentinels' addresses).
func (r *Redis) Addr() string { return r.addr }

// write sends a write through do. With WaitReplicas set it then waits, on the same
// connection, until that many replicas confirm they have it: WAIT counts the writes of the
// connection it is sent on, and cannot run inside MULTI (it would not block there).
func (r *Redis) write(ctx context.Context, c *redis.Client, do func(redis.Cmdable) error) error {
	if r.waitReplicas <= 0 {
		return do(c)
	}
	conn := c.Conn()
	defer conn.Close()
	if err := do(conn); err != nil {
		return err
	}
	n, err := conn.Wait(ctx, r.waitReplicas, r.waitTimeout).Result()
	if err != nil {
		return err
	}
	if n < int64(r.waitReplicas) {
		return fmt.Errorf("%w: %d of %d within %v", errNotReplicated, n, r.waitReplicas, r.waitTimeout)
	}
	return nil
}

// transaction is write with the commands queue adds sent in one MULTI/EXEC.
func (r *Redis) transaction(ctx context.Context, c *redis.Client, queue func(redis.Pipeliner)) error {
	return r.write(ctx, c, func(c redis.Cmdable) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			queue(p)
			return nil
		})
		return err
	})
}

// wrap adds context to err and marks it ErrUnavailable when redis is unreachable.
func (r *Redis) wrap(op string, err error) error {
	if redisUnavailable(err) {
		return fmt.Errorf("redis %s: %s: %w: %w", r.addr, op, ErrUnavailable, err)
	}
	return fmt.Errorf("redis %s: %s: %w", r.addr, op, err)
}

func bbmodelKey(docid string, k ModelKey) string {
	return "bbmodel:" + k.Type + ":" + docid + ":" + k.ID
}

// parseBBModelKey takes type and id back out of bbmodel:<type>:<docid>:<id>. Neither
// contains ':', so the first and last separators delimit them whatever the docid holds.
func parseBBModelKey(key string) (ModelKey, bool) {
	rest, ok := strings.CutPrefix(key, "bbmodel:")
	if !ok {
		return ModelKey{}, false
	}
	typ, rest, ok := strings.Cut(rest, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || typ == "" || i < 0 || i == len(rest)-1 {
		return ModelKey{}, false
	}
	return ModelKey{Type: typ, ID: rest[i+1:]}, true
}

func docSetKey(docid string) string { return "doc:" + docid }

// overlayKey: temp has no ':', so no (docid, temp) pair can alias another.
func overlayKey(scope Scope) string { return "overlay:" + scope.DocID + ":" + scope.Temp }

// Models implements Models with SMEMBERS + MGET (doc) or HGETALL (overlay).
func (r *Redis) Models(ctx context.Context, scope Scope) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("redis: models: %w", err)
	}
	op := "models of " + scope.String()
	if scope.IsOverlay() {
		fields, err := r.models.HGetAll(ctx, overlayKey(scope)).Result()
		if err != nil {
			return nil, r.wrap(op, err)
		}
		out := make([]Model, 0, len(fields))
		for f, attrs := range fields {
			if k, ok := parseModelField(f); ok {
				out = append(out, Model{Type: k.Type, ID: k.ID, Attrs: replyBytes(attrs)})
			}
		}
		return out, nil
	}
	members, err := r.models.SMembers(ctx, docSetKey(scope.DocID)).Result()
	if err != nil {
		return nil, r.wrap(op, err)
	}
	keys := make([]ModelKey, 0, len(members))
	names := make([]string, 0, len(members))
	for _, m := range members {
		if k, ok := parseBBModelKey(m); ok {
			keys = append(keys, k)
			names = append(names, m)
		}
	}
	return r.mget(ctx, op, keys, names)
}

// mget reads the bbmodel keys names (naming keys), leaving out missing values: a set
// member whose value is gone (a concurrent delete) is not a model.
func (r *Redis) mget(ctx context.Context, op string, keys []ModelKey, names []string) ([]Model, error) {
	if len(names) == 0 {
		return nil, nil
	}
	vals, err := r.models.MGet(ctx, names...).Result()
	if err != nil {
		return nil, r.wrap(op, err)
	}
	return collect(keys, vals), nil
}

// collect pairs keys with the MGET/HMGET replies vals, skipping nil (missing) ones.
func collect(keys []ModelKey, vals []any) []Model {
	out := make([]Model, 0, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok && i < len(keys) {
			out = append(out, Model{Type: keys[i].Type, ID: keys[i].ID, Attrs: replyBytes(s)})
		}
	}
	return out
}

// replyBytes returns a reply string's bytes without copying them: go-redis reads every
// bulk reply into a buffer of its own that nothing else refers to, and stored attributes
// are never modified in place (the caller owns them, read-only). For a streaming source
// that saves copying the 60 KB just read on every write.
func replyBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// GetModels implements Models with MGET (doc) or HMGET (overlay).
func (r *Redis) GetModels(ctx context.Context, scope Scope, keys []ModelKey) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("redis: get models: %w", err)
	}
	op := "get models of " + scope.String()
	valid := make([]ModelKey, 0, len(keys))
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if !validKey(k) {
			continue
		}
		valid = append(valid, k)
		if scope.IsOverlay() {
			names = append(names, modelField(k))
		} else {
			names = append(names, bbmodelKey(scope.DocID, k))
		}
	}
	if !scope.IsOverlay() {
		return r.mget(ctx, op, valid, names)
	}
	if len(names) == 0 {
		return nil, nil
	}
	vals, err := r.models.HMGet(ctx, overlayKey(scope), names...).Result()
	if err != nil {
		return nil, r.wrap(op, err)
	}
	return collect(valid, vals), nil
}

// PutModels implements Models: MSET then SADD (doc), as the original did, or HSET then
// PEXPIRE (overlay), each pair in one MULTI/EXEC so no reader sees half a write.
func (r *Redis) PutModels(ctx context.Context, scope Scope, models []Model) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("redis: put models: %w", err)
	}
	if err := checkModels(models); err != nil {
		return fmt.Errorf("redis: put models: %w", err)
	}
	if len(models) == 0 {
		return nil // redis rejects an empty MSET/SADD/HSET
	}
	pairs := make([]any, 0, 2*len(models))
	var queue func(redis.Pipeliner)
	if scope.IsOverlay() {
		for _, m := range models {
			pairs = append(pairs, modelField(m.Key()), m.Attrs)
		}
		key := overlayKey(scope)
		queue = func(pipe redis.Pipeliner) {
			pipe.HSet(ctx, key, pairs...)
			pipe.PExpire(ctx, key, r.ttl)
		}
	} else {
		members := make([]any, 0, len(models))
		for _, m := range models {
			name := bbmodelKey(scope.DocID, m.Key())
			pairs = append(pairs, name, m.Attrs)
			members = append(members, name)
		}
		queue = func(pipe redis.Pipeliner) {
			pipe.MSet(ctx, pairs...)
			pipe.SAdd(ctx, docSetKey(scope.DocID), members...)
		}
	}
	if err := r.transaction(ctx, r.models, queue); err != nil {
		return r.wrap("put models of "+scope.String(), err)
	}
	return nil
}

// DeleteModels implements Models with SREM + DEL (doc) or HDEL (overlay).
func (r *Redis) DeleteModels(ctx context.Context, scope Scope, keys []ModelKey) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("redis: delete models: %w", err)
	}
	op := "delete models of " + scope.String()
	var names []string
	for _, k := range keys {
		if !validKey(k) {
			continue
		}
		if scope.IsOverlay() {
			names = append(names, modelField(k))
		} else {
			names = append(names, bbmodelKey(scope.DocID, k))
		}
	}
	if len(names) == 0 {
		return nil
	}
	var err error
	if scope.IsOverlay() {
		err = r.write(ctx, r.models, func(c redis.Cmdable) error {
			return c.HDel(ctx, overlayKey(scope), names...).Err()
		})
	} else {
		members := make([]any, len(names))
		for i, n := range names {
			members[i] = n
		}
		err = r.transaction(ctx, r.models, func(pipe redis.Pipeliner) {
			pipe.SRem(ctx, docSetKey(scope.DocID), members...)
			pipe.Del(ctx, names...)
		})
	}
	if err != nil {
		return r.wrap(op, err)
	}
	return nil
}

func (r *Redis) loadRecord(ctx context.Context, kind, id string) ([]byte, error) {
	b, err := r.records.Get(ctx, recordKey(kind, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis %s: %s %q: %w", r.addr, kind, id, ErrNotFound)
	}
	if err != nil {
		return nil, r.wrap(fmt.Sprintf("read %s %q", kind, id), err)
	}
	return b, nil
}

// storeRecord stores with SET, or SET NX (the atomic form of the original's
// WATCH/GET/MULTI/SET) for onlyNew.
func (r *Redis) storeRecord(ctx context.Context, kind, id string, text []byte, onlyNew bool) (created bool, err error) {
	key := recordKey(kind, id)
	err = r.write(ctx, r.records, func(c redis.Cmdable) (err error) {
		if onlyNew {
			created, err = c.SetNX(ctx, key, text, 0).Result()
			return err
		}
		created = true
		return c.Set(ctx, key, text, 0).Err()
	})
	if err != nil {
		return false, r.wrap(fmt.Sprintf("write %s %q", kind, id), err)
	}
	return created, nil
}

// Ping implements Store, checking both databases (each client has its own connections).
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.models.Ping(ctx).Err(); err != nil {
		return r.wrap(fmt.Sprintf("ping db %d", redisModelDB), err)
	}
	if err := r.records.Ping(ctx).Err(); err != nil {
		return r.wrap(fmt.Sprintf("ping db %d", redisRecordDB), err)
	}
	return nil
}

// Close implements Store.
func (r *Redis) Close() error {
	if err := errors.Join(r.models.Close(), r.records.Close()); err != nil {
		return fmt.Errorf("redis %s: close: %w", r.addr, err)
	}
	return nil
}
