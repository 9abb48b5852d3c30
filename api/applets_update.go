package api

import (
	"context"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/storage"
)

// updateModelOrApplet is #4 PUT and #5 PATCH: through the applet host for an applet
// document, natively for every other.
func (s *Server) updateModelOrApplet(c echo.Context) error {
	if s.applets != nil {
		if handled, err := s.appletWrite(c, false); handled {
			return err
		}
	}
	return s.updateModel(c)
}

// bulkUpsertOrApplet is #8. BokehJS never sends it; a client that says it is not Python
// (header client) gets callbacks run on an applet document, as in the original.
func (s *Server) bulkUpsertOrApplet(c echo.Context) error {
	if s.applets != nil && c.Request().Header.Get("client") != "" && c.Request().Header.Get("client") != "python" {
		if handled, err := s.appletWrite(c, true); handled {
			return err
		}
	}
	return s.bulkUpsert(c)
}

// appletWrite applies a write to an applet document (APPLETS.md §5.2): the host rebuilds
// the document as this viewer sees it (overlay applied), loads the change so the callbacks
// run, and answers the changed models; they are stored in the viewer's scope and pushed in
// one modelpush on bokehplot:<write id>. Writes to one document and overlay run one at a
// time in arrival order; other pages run in parallel. A host failure stores and pushes
// nothing. handled is false (nothing read, nothing done) when the document is not an
// applet document.
func (s *Server) appletWrite(c echo.Context, bulk bool) (handled bool, err error) {
	// Queued first, so that the order is the order the requests came in.
	ctx := c.Request().Context()
	docid := c.Param("docid")
	unlock, err := s.applets.queue.lock(ctx, docid+"\x00"+c.Request().Header.Get(headerTempPrefix+docid))
	if err != nil {
		return true, err
	}
	defer unlock()
	a, err := s.authorizeWrite(c, docid, true)
	if err != nil {
		return true, err
	}
	d, err := s.loadModels(ctx, a)
	if err != nil {
		return true, err
	}
	reachable := d.reachable()
	if !s.applets.isAppletDoc(reachable) {
		return false, nil
	}
	if a.temp != "" { // a public viewer: the callbacks run only within the write rate
		if err := s.scratch.writeRate(a.viewer, time.Now()); err != nil {
			return true, err
		}
	}
	changes, err := s.appletChanges(c, bulk)
	if err != nil {
		return true, err
	}
	payload := append([]byte(`{"models": `), appendModelList(nil, reachable, nil)...)
	payload = append(append(append(payload, `, "changes": `...), changes...), '}')
	var user *storage.User
	if a.user != nil {
		user = a.user
	} else if !s.cfg.MultiUser {
		user = &storage.User{Username: defaultUsername}
	}
	out, err := s.applets.host.Update(ctx, applet.UpdateCall{
		Request: s.appletRequest(c, user), DocID: a.doc.DocID, Payload: payload,
	})
	if err != nil {
		return true, s.appletError(c, "callback", err)
	}
	push, err := s.storeAppletChanges(ctx, a, out)
	if err != nil {
		return true, err
	}
	if _, err := s.store.ExtendDocExpiry(ctx, a.doc.DocID, s.appletExpiry(time.Now())); err != nil {
		s.log.Warn("applet document expiry not extended", "doc", a.doc.DocID, "err", err)
	}
	if bulk {
		return true, jsonBytes(c, push)
	}
	return true, jsonBytes(c, []byte(`{"noop": true}`))
}

// appletChanges reads the request body as the JSON array of changes the host loads:
// {"type", ["subtype",] "attributes": {..., "id"}}. A PUT or PATCH body is one model's
// attributes, whose type and id come from the URL; Backbone's "noop" and "doc" are dropped.
// The text is built before the pooled body is released.
func (s *Server) appletChanges(c echo.Context, bulk bool) ([]byte, error) {
	body, release, err := readBody(c)
	if err != nil {
		return nil, err
	}
	defer release()
	if bulk {
		in, _, err := parseBulk(body)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		return appendChanges(nil, in), nil
	}
	fields, _, err := rawjson.Fields(body)
	if err != nil {
		return nil, badRequest("attributes must be a JSON object: %v", err)
	}
	m := incoming{typ: c.Param("typename"), id: c.Param("id")}
	m.attrs, _ = withoutIDDoc(fields)
	if err := validName("type", m.typ); err != nil {
		return nil, badRequest("%v", err)
	}
	if err := validName("id", m.id); err != nil {
		return nil, badRequest("%v", err)
	}
	return appendChanges(nil, []incoming{m}), nil
}

func appendChanges(dst []byte, in []incoming) []byte {
	dst = append(dst, '[')
	for i, m := range in {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, `{"type": `...)
		dst = rawjson.AppendString(dst, m.typ)
		if m.subtype != "" {
			dst = append(dst, `, "subtype": `...)
			dst = rawjson.AppendString(dst, m.subtype)
		}
		dst = append(dst, `, "attributes": {`...)
		for _, f := range m.attrs {
			dst = rawjson.AppendString(dst, f.Key)
			dst = append(dst, ": "...)
			dst = append(dst, f.Value...)
			dst = append(dst, ", "...)
		}
		dst = append(dst, `"id": `...)
		dst = rawjson.AppendString(dst, m.id)
		dst = append(dst, "}}"...)
	}
	return append(dst, ']')
}

// storeAppletChanges stores the models the host changed in the request's scope and
// publishes them, under the scope's write lock so that the push order is the store order.
// It returns the modelpush text (bare NaN kept, as bulkupsert answers it).
func (s *Server) storeAppletChanges(ctx context.Context, a *access, out []byte) ([]byte, error) {
	in, info, err := parseBulk(out)
	if err != nil {
		return nil, fmt.Errorf("applet callback: the host's models: %w", err)
	}
	models, push := appletModels(in, a.doc.DocID)
	scope := a.scope()
	defer s.locks.lock(lockKey(scope))()
	undo := func() {}
	if a.temp != "" { // a viewer's scratch copy: within its quotas (scratch.go)
		if undo, err = s.scratch.reserve(a.doc.DocID, a.temp, a.viewer, models, time.Now()); err != nil {
			return nil, err
		}
	}
	if err := s.store.PutModels(ctx, scope, models); err != nil {
		undo()
		return nil, fmt.Errorf("applet callback: store models: %w", err)
	}
	if len(models) == 0 {
		return push, nil
	}
	msg := push
	if info.BareTokens {
		msg = rawjson.Sanitize(push)
	}
	topic := a.doc.DocID
	if a.temp != "" {
		topic = a.temp
	}
	s.pub.Publish(broker.Message{Topic: broker.PlotTopic(topic), Payload: msg})
	return push, nil
}

// appletModels turns models the host dumped into stored models (attributes ending in "id"
// and "doc" = the real docid, as every stored model's) and the modelpush text that carries
// them; the stored attributes are slices of that text.
func appletModels(in []incoming, docid string) ([]storage.Model, []byte) {
	merged := make([]*mergedModel, len(in))
	for i, m := range in {
		merged[i] = &mergedModel{typ: m.typ, subtype: m.subtype, id: m.id, members: m.attrs}
	}
	push := writeModelPush(merged, docid)
	models := make([]storage.Model, len(in))
	for i, m := range merged {
		models[i] = storage.Model{Type: m.typ, ID: m.id, Attrs: m.attrs}
	}
	return models, push
}
