package storage

import (
	"context"
	"encoding/json"
	"fmt"
)

// recordKV is what a backend provides under the Doc and User records: one JSON text per
// kind ("doc", "user") and id, under the record keys of PROTOCOL.md §4.
type recordKV interface {
	// loadRecord returns the text of kind:id, or an error wrapping ErrNotFound.
	loadRecord(ctx context.Context, kind, id string) ([]byte, error)
	// storeRecord stores text as kind:id; with onlyNew it leaves an existing record alone
	// and reports created == false, checking and writing at once.
	storeRecord(ctx context.Context, kind, id string, text []byte, onlyNew bool) (created bool, err error)
}

// recordAccess implements the Doc and User methods of Records over a backend's recordKV,
// once for every backend (they embed it).
type recordAccess struct {
	kv   recordKV
	name string // the backend, in errors
}

// Doc implements Records.
func (a recordAccess) Doc(ctx context.Context, docid string) (Doc, error) {
	var d Doc
	if err := a.get(ctx, "doc", docid, &d); err != nil {
		return Doc{}, err
	}
	return d, nil
}

// PutDoc implements Records.
func (a recordAccess) PutDoc(ctx context.Context, doc Doc) error {
	_, err := a.put(ctx, "doc", doc.DocID, doc, false)
	return err
}

// User implements Records.
func (a recordAccess) User(ctx context.Context, username string) (User, error) {
	var u User
	if err := a.get(ctx, "user", username, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

// PutUser implements Records.
func (a recordAccess) PutUser(ctx context.Context, user User) error {
	_, err := a.put(ctx, "user", user.Username, user, false)
	return err
}

// CreateUser implements Records: it stores the user only if no record has its name.
func (a recordAccess) CreateUser(ctx context.Context, user User) error {
	created, err := a.put(ctx, "user", user.Username, user, true)
	if err != nil {
		return err
	}
	if !created {
		return fmt.Errorf("%s: create user %q: %w", a.name, user.Username, ErrExists)
	}
	return nil
}

func (a recordAccess) get(ctx context.Context, kind, id string, v any) error {
	b, err := a.kv.loadRecord(ctx, kind, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode %s %q: %w", a.name, kind, id, err)
	}
	return nil
}

func (a recordAccess) put(ctx context.Context, kind, id string, v any, onlyNew bool) (bool, error) {
	if err := checkID(kind, id); err != nil {
		return false, fmt.Errorf("%s: put %s: %w", a.name, kind, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("%s: encode %s %q: %w", a.name, kind, id, err)
	}
	return a.kv.storeRecord(ctx, kind, id, b, onlyNew)
}
