package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/storage"
)

// jsonBytes writes a JSON response that is already encoded. With its length known the
// body goes out in one write, not in chunks.
func jsonBytes(c echo.Context, body []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// readDocument is the R* step shared by the read routes: check read permission (with the
// viewer's overlay when a temporary id is sent) and load the document's models.
func (s *Server) readDocument(c echo.Context, docid string) (*access, *docModels, error) {
	a, err := s.authorizeRead(c, docid, true)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.loadModels(c.Request().Context(), a)
	if err != nil {
		return nil, nil, err
	}
	return a, d, nil
}

// getAllModels is #1: every reachable model of the document.
func (s *Server) getAllModels(c echo.Context) error {
	_, d, err := s.readDocument(c, c.Param("docid"))
	if err != nil {
		return err
	}
	return jsonBytes(c, appendModelList(nil, d.reachable(), nil))
}

// getModelsByType is #2: attribute dicts of the reachable models of one type.
func (s *Server) getModelsByType(c echo.Context) error {
	_, d, err := s.readDocument(c, c.Param("docid"))
	if err != nil {
		return err
	}
	typ := c.Param("typename")
	out := []byte{'['}
	for _, m := range d.reachable() {
		if m.Type != typ {
			continue
		}
		if len(out) > 1 {
			out = append(out, ", "...)
		}
		out = append(out, m.Attrs...)
	}
	return jsonBytes(c, append(out, ']'))
}

// getModel is #3: the attribute dict of one reachable model.
func (s *Server) getModel(c echo.Context) error {
	a, d, err := s.readDocument(c, c.Param("docid"))
	if err != nil {
		return err
	}
	id := c.Param("id")
	for _, m := range d.reachable() {
		if m.ID == id {
			return jsonBytes(c, m.Attrs)
		}
	}
	return notFound("no model %q in document %q", id, a.doc.DocID)
}

// updateModel is #4 PUT and #5 PATCH: merge the body into the model and push it.
func (s *Server) updateModel(c echo.Context) error {
	a, err := s.authorizeWrite(c, c.Param("docid"), true)
	if err != nil {
		return err
	}
	m, release, err := s.incomingFromURL(c)
	if err != nil {
		return err
	}
	defer release()
	if _, _, err := s.writeModels(c.Request().Context(), a, []incoming{m}, m.bareTokens); err != nil {
		return err
	}
	return jsonBytes(c, []byte(`{"noop": true}`))
}

// createModel is #7 (broken in the original): store the model, push it, answer its attributes.
func (s *Server) createModel(c echo.Context) error {
	a, err := s.authorizeWrite(c, c.Param("docid"), true)
	if err != nil {
		return err
	}
	m, release, err := s.incomingFromURL(c)
	if err != nil {
		return err
	}
	defer release()
	models, _, err := s.writeModels(c.Request().Context(), a, []incoming{m}, m.bareTokens)
	if err != nil {
		return err
	}
	return jsonBytes(c, models[0].Attrs)
}

// incomingFromURL reads a PUT/PATCH/POST body: an attributes object whose type (and for
// PUT/PATCH, id) come from the URL. The attributes are slices of the pooled body: the
// caller calls release once they are written (merged into a text of their own), and not
// before (a released body is another request's buffer at once).
func (s *Server) incomingFromURL(c echo.Context) (m incoming, release func(), err error) {
	body, release, err := readBody(c)
	if err != nil {
		return incoming{}, nil, err
	}
	m, err = parseIncoming(c, body)
	if err != nil {
		release()
		return m, nil, err
	}
	return m, release, nil
}

// parseIncoming splits a PUT/PATCH/POST body into an incoming model.
func parseIncoming(c echo.Context, body []byte) (incoming, error) {
	fields, info, err := rawjson.Fields(body)
	if err != nil {
		return incoming{}, badRequest("attributes must be a JSON object: %v", err)
	}
	m := incoming{typ: c.Param("typename"), bareTokens: info.BareTokens}
	m.attrs, m.id = withoutIDDoc(fields)
	if urlID := c.Param("id"); urlID != "" {
		m.id = urlID
	} else if m.id == "" {
		m.id = uuid.NewString()
	}
	if err := validName("type", m.typ); err != nil {
		return m, badRequest("%v", err)
	}
	if err := validName("id", m.id); err != nil {
		return m, badRequest("%v", err)
	}
	return m, nil
}

// deleteModel is #6 (broken in the original): remove the model and answer its attributes.
// Nothing is published: BokehJS throws on modeldel (§2.4 #6).
func (s *Server) deleteModel(c echo.Context) error {
	a, err := s.authorizeWrite(c, c.Param("docid"), true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	key := storage.ModelKey{Type: c.Param("typename"), ID: c.Param("id")}
	defer s.locks.lock(lockKey(a.scope()))()
	found, err := s.store.GetModels(ctx, a.scope(), []storage.ModelKey{key})
	if err != nil {
		return fmt.Errorf("delete model: %w", err)
	}
	if len(found) == 0 {
		return notFound("no model %s/%s in document %q", key.Type, key.ID, a.doc.DocID)
	}
	if err := s.store.DeleteModels(ctx, a.scope(), []storage.ModelKey{key}); err != nil {
		return fmt.Errorf("delete model: %w", err)
	}
	if a.temp != "" {
		s.scratch.removed(a.doc.DocID, a.temp, []storage.ModelKey{key})
	}
	return jsonBytes(c, found[0].Attrs)
}

// bulkUpsert is #8, the Python client's only write path: merge every model, store them all,
// push them, and answer the same modelpush text.
func (s *Server) bulkUpsert(c echo.Context) error {
	a, err := s.authorizeWrite(c, c.Param("docid"), true)
	if err != nil {
		return err
	}
	body, release, err := readBody(c)
	if err != nil {
		return err
	}
	defer release()
	in, info, err := parseBulk(body)
	if err != nil {
		return badRequest("%v", err)
	}
	ctx := c.Request().Context()
	if len(in) == 0 {
		// The original answers (and publishes) every reachable model for an empty list.
		return s.pushWholeDocument(ctx, a, c)
	}
	_, push, err := s.writeModels(ctx, a, in, info.BareTokens)
	if err != nil {
		return err
	}
	return jsonBytes(c, push)
}

func (s *Server) pushWholeDocument(ctx context.Context, a *access, c echo.Context) error {
	d, err := s.loadModels(ctx, a)
	if err != nil {
		return err
	}
	msg := modelPush(d.reachable(), nil)
	s.publishPush(a, msg, true)
	return jsonBytes(c, msg)
}

// writeModels merges the incoming models into the request's scope, stores them in one write
// and publishes one modelpush, all under the scope's lock so that publish order matches
// storage order. With a TMP, models not yet in the overlay start from the document's version.
// It returns the stored models and the modelpush text (bare NaN tokens kept, for the Python
// client; the published copy is sanitized when the input or kept attributes had any).
func (s *Server) writeModels(ctx context.Context, a *access, in []incoming, bareTokens bool) (_ []storage.Model, _ []byte, err error) {
	scope := a.scope()
	keys := make([]storage.ModelKey, len(in))
	for i, m := range in {
		keys[i] = storage.ModelKey{Type: m.typ, ID: m.id}
	}
	defer s.locks.lock(lockKey(scope))()
	stored, err := s.storedVersions(ctx, a, keys)
	if err != nil {
		return nil, nil, err
	}
	var merged []*mergedModel
	index := make(map[storage.ModelKey]*mergedModel, len(in))
	for _, m := range in {
		k := storage.ModelKey{Type: m.typ, ID: m.id}
		var base []rawjson.Field
		var tokens bool
		if prev, dup := index[k]; dup {
			// The same model twice in one request: later attributes win, as sequential
			// writes would have it.
			base, tokens = prev.members, prev.tokens
		} else {
			base, tokens, err = s.storedMembers(fieldCacheKey(scope, k), stored[k], m.id)
			if err != nil {
				return nil, nil, err
			}
		}
		mm := index[k]
		if mm == nil {
			mm = &mergedModel{typ: m.typ, id: m.id}
			index[k] = mm
			merged = append(merged, mm)
		}
		mm.members = mergeMembers(base, m.attrs)
		mm.tokens = tokens || m.bareTokens
		bareTokens = bareTokens || mm.tokens
		if m.subtype != "" {
			mm.subtype = m.subtype
		}
	}
	push := writeModelPush(merged, a.doc.DocID)
	out := make([]storage.Model, len(merged))
	for i, mm := range merged {
		out[i] = storage.Model{Type: mm.typ, ID: mm.id, Attrs: mm.attrs}
	}
	if a.temp != "" {
		undo, refused := s.scratch.admit(a.doc.DocID, a.temp, a.viewer, out, time.Now())
		if refused != nil {
			return nil, nil, refused
		}
		defer func() { // storing failed: the copy did not grow
			if err != nil {
				undo()
			}
		}()
	}
	if err = s.store.PutModels(ctx, scope, out); err != nil {
		return nil, nil, fmt.Errorf("store models: %w", err)
	}
	for _, mm := range merged {
		s.fields.put(fieldCacheKey(scope, storage.ModelKey{Type: mm.typ, ID: mm.id}),
			cachedFields{attrs: mm.attrs, members: mm.members, tokens: mm.tokens})
	}
	s.publishPush(a, push, bareTokens)
	return out, push, nil
}

// storedVersions returns the current attributes of keys in the request's view: the overlay's
// version when there is one, else the document's.
func (s *Server) storedVersions(ctx context.Context, a *access, keys []storage.ModelKey) (map[storage.ModelKey][]byte, error) {
	found, err := s.store.GetModels(ctx, a.scope(), keys)
	if err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	out := make(map[storage.ModelKey][]byte, len(keys))
	for _, m := range found {
		out[m.Key()] = m.Attrs
	}
	if a.temp == "" || len(out) == len(keys) {
		return out, nil
	}
	var missing []storage.ModelKey
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			missing = append(missing, k)
		}
	}
	base, err := s.store.GetModels(ctx, storage.Scope{DocID: a.doc.DocID}, missing)
	if err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	for _, m := range base {
		out[m.Key()] = m.Attrs
	}
	return out, nil
}

// publishPush sends a modelpush to the write scope's topic: bokehplot:<docid>, or
// bokehplot:<TMP> for an overlay. Browsers get bare NaN/Infinity as strings (§3.2).
func (s *Server) publishPush(a *access, msg []byte, bareTokens bool) {
	topic := a.doc.DocID
	if a.temp != "" {
		topic = a.temp
	}
	if bareTokens {
		msg = rawjson.Sanitize(msg)
	}
	s.pub.Publish(broker.Message{Topic: broker.PlotTopic(topic), Payload: msg})
}

// gc is #45: delete models unreachable from the PlotContext. Without a TMP it cleans the
// document; with one, only the viewer's overlay (the original cleaned the real document,
// §8 item 20). Nothing is published.
func (s *Server) gc(c echo.Context) error {
	a, err := s.authorizeWrite(c, c.Param("docid"), true)
	if err != nil {
		return err
	}
	if err := s.collectGarbage(c.Request().Context(), a); err != nil {
		return err
	}
	return jsonBytes(c, []byte(`{"status": "success"}`))
}

// runGC070 is the 0.7.0 GET …/rungc, kept as an alias of gc answering text (§2.4 #10). A
// GET that deletes, so never a drive-by (checkStateChangingGET).
func (s *Server) runGC070(c echo.Context) error {
	if err := s.checkStateChangingGET(c); err != nil {
		return err
	}
	a, err := s.authorizeWrite(c, c.Param("docid"), false)
	if err != nil {
		return err
	}
	if err := s.collectGarbage(c.Request().Context(), a); err != nil {
		return err
	}
	return c.String(http.StatusOK, "success")
}

func (s *Server) collectGarbage(ctx context.Context, a *access) error {
	defer s.locks.lock(lockKey(a.scope()))()
	d, err := s.loadModels(ctx, a)
	if err != nil {
		return err
	}
	var orphans []storage.ModelKey
	for _, m := range d.unreachable() {
		if a.temp == "" || d.fromOv[m.ID] {
			orphans = append(orphans, m.Key())
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	if err := s.store.DeleteModels(ctx, a.scope(), orphans); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if a.temp != "" {
		s.scratch.removed(a.doc.DocID, a.temp, orphans)
	}
	s.log.Debug("gc", "doc", a.doc.DocID, "temp", a.temp, "deleted", len(orphans))
	return nil
}

func lockKey(scope storage.Scope) string {
	return "models:" + scope.DocID + "\x00" + scope.Temp
}
