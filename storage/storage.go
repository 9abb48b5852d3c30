// Package storage keeps bokeh documents: backbone models (plot objects) and server models
// (Doc and User records), behind one interface with memory, shelve (bbolt) and redis backends.
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a Doc or User record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by CreateUser when the username is taken.
var ErrExists = errors.New("already exists")

// ErrUnavailable wraps errors that mean the backend cannot be reached right now (redis down,
// timeout); the API answers them with 503 and callers may retry.
var ErrUnavailable = errors.New("storage unavailable")

// ErrInvalidKey is returned when a scope, model key or record id cannot be stored: model
// types, model ids and overlay temps must be non-empty and free of ':' (storage keys are split
// on it), docids and usernames non-empty.
var ErrInvalidKey = errors.New("invalid key")

// DefaultOverlayTTL is how long a viewer's copy-on-write overlay outlives its last write.
const DefaultOverlayTTL = 24 * time.Hour

// Model is one backbone model as stored: key bbmodel:<Type>:<docid>:<ID> holds Attrs, the
// JSON text of its attributes object, which always contains "id" and "doc" (the real docid).
// Attrs is raw text: numbers keep their original spelling and Python's bare NaN/Infinity
// tokens are kept as they came (see package rawjson).
type Model struct {
	Type  string
	ID    string
	Attrs []byte
}

// ModelKey names a model within a scope.
type ModelKey struct {
	Type string
	ID   string
}

// Key returns the model's key.
func (m Model) Key() ModelKey { return ModelKey{Type: m.Type, ID: m.ID} }

// Scope is the set of models a request reads or writes: a document's own models (Temp
// empty) or the copy-on-write overlay one public viewer (temporary id Temp) keeps on top of
// document DocID. Overlays live in their own namespace, so no Temp value can name another
// document's models, and expire OverlayTTL after their last write.
type Scope struct {
	DocID string
	Temp  string
}

// IsOverlay reports whether s names a viewer's overlay rather than the document itself.
func (s Scope) IsOverlay() bool { return s.Temp != "" }

// String names the scope in error messages.
func (s Scope) String() string {
	if s.IsOverlay() {
		return "overlay " + s.DocID + "/" + s.Temp
	}
	return "doc " + s.DocID
}

// Models stores backbone models.
type Models interface {
	// Models returns every model stored in scope, in no particular order.
	Models(ctx context.Context, scope Scope) ([]Model, error)
	// GetModels returns the stored models among keys (missing ones, and keys that could
	// never be stored, are left out).
	GetModels(ctx context.Context, scope Scope, keys []ModelKey) ([]Model, error)
	// PutModels replaces the given models' values and adds them to the scope's set. An
	// empty slice writes nothing. Writing an overlay refreshes its expiry. A model whose
	// type or id is invalid fails the whole call with ErrInvalidKey.
	PutModels(ctx context.Context, scope Scope, models []Model) error
	// DeleteModels removes models from the scope (missing ones are ignored).
	DeleteModels(ctx context.Context, scope Scope, keys []ModelKey) error
}

// Records stores server models: Doc and User records.
type Records interface {
	// Doc returns the Doc record of docid, or ErrNotFound.
	Doc(ctx context.Context, docid string) (Doc, error)
	// PutDoc creates or replaces a Doc record.
	PutDoc(ctx context.Context, doc Doc) error
	// User returns the User record of username, or ErrNotFound.
	User(ctx context.Context, username string) (User, error)
	// PutUser creates or replaces a User record.
	PutUser(ctx context.Context, user User) error
	// CreateUser stores a new User record atomically, or returns ErrExists.
	CreateUser(ctx context.Context, user User) error
}

// DocExpiry deletes documents that are of use only for a while: an applet page makes one
// per view (bokeh-server --script), which nobody needs once the page is closed. Documents
// without an expiry are never deleted by it.
type DocExpiry interface {
	// SetDocExpiry makes docid due for deletion at `at`, replacing an earlier time.
	SetDocExpiry(ctx context.Context, docid string, at time.Time) error
	// ExtendDocExpiry moves docid's time to `at` if it has one, and reports whether it had.
	ExtendDocExpiry(ctx context.Context, docid string, at time.Time) (bool, error)
	// ClaimExpiredDocs takes up to limit docids whose time is not after now off the
	// schedule, earliest first, and returns them: of several processes sweeping one store,
	// one gets each.
	ClaimExpiredDocs(ctx context.Context, now time.Time, limit int) ([]string, error)
	// DeleteDoc deletes a document's record, its models and its expiry. Its viewers'
	// overlays expire on their own (a backend may delete them at once).
	DeleteDoc(ctx context.Context, docid string) error
}

// Store is a storage backend.
type Store interface {
	Models
	Records
	DocExpiry
	// Ping checks that the backend can serve requests (e.g. redis is reachable).
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
