package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/storage"
)

// loadDoc returns the Doc record of docid, 404 when unknown (the original crashed, §2.1).
// Records written before 0.8 lack a readonlyapikey: one is added and saved once (§3.3).
func (s *Server) loadDoc(ctx context.Context, docid string) (storage.Doc, error) {
	now := time.Now()
	if doc, ok := s.docs.get(docid, now); ok {
		return doc, nil
	}
	doc, err := s.store.Doc(ctx, docid)
	if errors.Is(err, storage.ErrNotFound) {
		return doc, notFound("no document %q", docid)
	}
	if err != nil {
		return doc, fmt.Errorf("load doc %s: %w", docid, err)
	}
	if doc.ReadOnlyAPIKey == "" {
		doc.ReadOnlyAPIKey = newKey()
		if err := s.store.PutDoc(ctx, doc); err != nil {
			return doc, fmt.Errorf("migrate doc %s: %w", docid, err)
		}
	}
	s.docs.put(doc, now)
	return doc, nil
}

// saveDoc stores a Doc record and refreshes this process's cached copy.
func (s *Server) saveDoc(ctx context.Context, doc storage.Doc) error {
	if err := s.store.PutDoc(ctx, doc); err != nil {
		return err
	}
	s.docs.put(doc, time.Now())
	return nil
}

// loadUser returns a user record, migrating old forms (§3.4): a missing apikey is generated
// and bare docid entries get their titles from the Doc records.
func (s *Server) loadUser(ctx context.Context, name string) (storage.User, error) {
	u, err := s.store.User(ctx, name)
	if err != nil {
		return u, fmt.Errorf("load user %q: %w", name, err)
	}
	dirty := false
	if u.APIKey == "" {
		u.APIKey, dirty = newKey(), true
	}
	for i, d := range u.Docs {
		if d.Title != "" {
			continue
		}
		if doc, err := s.store.Doc(ctx, d.DocID); err == nil {
			u.Docs[i].Title, dirty = doc.Title, true
		}
	}
	if dirty {
		if err := s.store.PutUser(ctx, u); err != nil {
			return u, fmt.Errorf("migrate user %q: %w", name, err)
		}
	}
	return u, nil
}

// defaultUser returns the single-user account, creating it on first need (§2.2).
func (s *Server) defaultUser(ctx context.Context) (storage.User, error) {
	u, err := s.loadUser(ctx, defaultUsername)
	if !errors.Is(err, storage.ErrNotFound) {
		return u, err
	}
	hash, err := hashPassword(newKey())
	if err != nil {
		return u, err
	}
	u = storage.User{Username: defaultUsername, PassHash: hash, APIKey: defaultAPIKey}
	if err := s.store.CreateUser(ctx, u); err != nil && !errors.Is(err, storage.ErrExists) {
		return u, fmt.Errorf("create %s: %w", defaultUsername, err)
	}
	return s.loadUser(ctx, defaultUsername)
}

// newDocument makes a document owned by username (§3.5): a PlotContext, the Doc record, then
// the user's list entry — in that order, so a failure never leaves a listed document without
// a record. Titles are unique per user (409).
func (s *Server) newDocument(ctx context.Context, username, title string) (storage.User, storage.Doc, error) {
	defer s.locks.lock("user:" + username)()
	u, err := s.loadUser(ctx, username)
	if err != nil {
		return u, storage.Doc{}, err
	}
	if slices.ContainsFunc(u.Docs, func(d storage.DocEntry) bool { return d.Title == title }) {
		return u, storage.Doc{}, conflict("title already exists: %q", title)
	}
	docid := uuid.NewString()
	pc := storage.Model{Type: "PlotContext", ID: uuid.NewString()}
	pc.Attrs = fmt.Appendf(nil, `{"children": [], "tags": [], "id": %q, "doc": %q}`, pc.ID, docid)
	doc := storage.Doc{
		DocID:          docid,
		Title:          title,
		RWUsers:        []string{username},
		RUsers:         []string{},
		PlotContextRef: storage.Ref{Type: pc.Type, ID: pc.ID},
		APIKey:         newKey(),
		ReadOnlyAPIKey: newKey(),
	}
	if err := s.store.PutModels(ctx, storage.Scope{DocID: docid}, []storage.Model{pc}); err != nil {
		return u, doc, fmt.Errorf("create doc: %w", err)
	}
	if err := s.saveDoc(ctx, doc); err != nil {
		return u, doc, fmt.Errorf("create doc: %w", err)
	}
	u.Docs = append(u.Docs, storage.DocEntry{DocID: docid, Title: title})
	if err := s.store.PutUser(ctx, u); err != nil {
		return u, doc, fmt.Errorf("create doc: %w", err)
	}
	s.publishDocChange(username)
	return u, doc, nil
}

func (s *Server) publishDocChange(username string) {
	s.pub.Publish(broker.Message{Topic: broker.UserTopic(username), Payload: []byte(`{"msgtype": "docchange"}`)})
}

// userPublic is the public form of a user record (§3.4).
type userPublic struct {
	Username string             `json:"username"`
	Docs     []storage.DocEntry `json:"docs"`
}

func publicUser(u storage.User) userPublic {
	docs := u.Docs
	if docs == nil {
		docs = []storage.DocEntry{}
	}
	return userPublic{Username: u.Username, Docs: docs}
}

func newKey() string { return uuid.NewString() }
