package storage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the "memory" backend: process-local maps, lost on exit (the 0.8.2 default).
//
// PutModels takes ownership of the Attrs slices it is given and the read methods return the
// stored slices themselves, so neither the caller of PutModels nor the receiver of a result
// may modify Attrs afterwards. That keeps a put/get of a 40 KB data source free of copies.
type Memory struct {
	ttl time.Duration
	now func() time.Time // time.Now; tests move it to expire overlays without sleeping

	recordAccess // Doc, PutDoc, User, PutUser, CreateUser over loadRecord and storeRecord

	mu        sync.RWMutex
	docs      map[string]map[ModelKey][]byte
	overlays  map[Scope]*memOverlay
	lastSweep time.Time
	// Records are kept as their JSON text so that callers never share slices with the
	// store and so that they read back exactly as from the persistent backends.
	docRecs  map[string][]byte
	userRecs map[string][]byte
	// docExpiry holds when documents with an expiry are due (DocExpiry).
	docExpiry map[string]time.Time
}

type memOverlay struct {
	models  map[ModelKey][]byte
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory whose overlays expire overlayTTL after their last write
// (DefaultOverlayTTL if overlayTTL <= 0).
func NewMemory(overlayTTL time.Duration) *Memory {
	if overlayTTL <= 0 {
		overlayTTL = DefaultOverlayTTL
	}
	m := &Memory{
		ttl:       overlayTTL,
		now:       time.Now,
		docs:      make(map[string]map[ModelKey][]byte),
		overlays:  make(map[Scope]*memOverlay),
		lastSweep: time.Now(),
		docRecs:   make(map[string][]byte),
		userRecs:  make(map[string][]byte),
		docExpiry: make(map[string]time.Time),
	}
	m.recordAccess = recordAccess{kv: m, name: "memory"}
	return m
}

// scopeModels returns the live model map of scope, or nil. The caller holds mu.
func (m *Memory) scopeModels(scope Scope, now time.Time) map[ModelKey][]byte {
	if !scope.IsOverlay() {
		return m.docs[scope.DocID]
	}
	o := m.overlays[scope]
	if o == nil || !now.Before(o.expires) {
		return nil
	}
	return o.models
}

// Models implements Models.
func (m *Memory) Models(_ context.Context, scope Scope) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("memory: models: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	stored := m.scopeModels(scope, m.now())
	out := make([]Model, 0, len(stored))
	for k, attrs := range stored {
		out = append(out, Model{Type: k.Type, ID: k.ID, Attrs: attrs})
	}
	return out, nil
}

// GetModels implements Models.
func (m *Memory) GetModels(_ context.Context, scope Scope, keys []ModelKey) ([]Model, error) {
	if err := checkScope(scope); err != nil {
		return nil, fmt.Errorf("memory: get models: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	stored := m.scopeModels(scope, m.now())
	var out []Model
	for _, k := range keys {
		if attrs, ok := stored[k]; ok {
			out = append(out, Model{Type: k.Type, ID: k.ID, Attrs: attrs})
		}
	}
	return out, nil
}

// PutModels implements Models.
func (m *Memory) PutModels(_ context.Context, scope Scope, models []Model) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("memory: put models: %w", err)
	}
	if err := checkModels(models); err != nil {
		return fmt.Errorf("memory: put models: %w", err)
	}
	if len(models) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var stored map[ModelKey][]byte
	if scope.IsOverlay() {
		now := m.now()
		m.sweep(now)
		o := m.overlays[scope]
		if o == nil || !now.Before(o.expires) {
			o = &memOverlay{models: make(map[ModelKey][]byte)}
			m.overlays[scope] = o
		}
		o.expires = now.Add(m.ttl)
		stored = o.models
	} else {
		stored = m.docs[scope.DocID]
		if stored == nil {
			stored = make(map[ModelKey][]byte, len(models))
			m.docs[scope.DocID] = stored
		}
	}
	for _, mod := range models {
		stored[mod.Key()] = mod.Attrs
	}
	return nil
}

// sweep drops expired overlays, at most once per sweepEvery so that a busy server does not
// walk every overlay on every write. Overlays only appear through writes, so sweeping on
// writes bounds the memory they hold without a background goroutine. The caller holds mu.
func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery(m.ttl) {
		return
	}
	m.lastSweep = now
	for s, o := range m.overlays {
		if !now.Before(o.expires) {
			delete(m.overlays, s)
		}
	}
}

// sweepEvery is how often the embedded backends look for expired overlays: often enough that
// expired data does not pile up for long, rarely enough that the walk stays cheap.
func sweepEvery(ttl time.Duration) time.Duration {
	return min(ttl, time.Minute)
}

// DeleteModels implements Models.
func (m *Memory) DeleteModels(_ context.Context, scope Scope, keys []ModelKey) error {
	if err := checkScope(scope); err != nil {
		return fmt.Errorf("memory: delete models: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	stored := m.scopeModels(scope, m.now())
	for _, k := range keys {
		delete(stored, k)
	}
	if len(stored) == 0 && !scope.IsOverlay() {
		delete(m.docs, scope.DocID)
	}
	return nil
}

// records is the map holding the records of kind.
func (m *Memory) records(kind string) map[string][]byte {
	if kind == "user" {
		return m.userRecs
	}
	return m.docRecs
}

func (m *Memory) loadRecord(_ context.Context, kind, id string) ([]byte, error) {
	m.mu.RLock()
	b, ok := m.records(kind)[id]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("memory: %s %q: %w", kind, id, ErrNotFound)
	}
	return b, nil
}

// storeRecord checks and writes under one lock.
func (m *Memory) storeRecord(_ context.Context, kind, id string, text []byte, onlyNew bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs := m.records(kind)
	if _, ok := recs[id]; ok && onlyNew {
		return false, nil
	}
	recs[id] = text
	return true, nil
}

// Ping implements Store; memory is always available.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store. It holds no resources, so the data stays readable until the
// Memory itself is dropped.
func (m *Memory) Close() error { return nil }
