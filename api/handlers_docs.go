package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/api/workerapi"
	"github.com/bokeh-go/bokeh-server/storage"
)

// docTitle reads the title of #13/#15: from a JSON body {"title": ...} when the request says
// it is JSON, else from the form or query.
func docTitle(c echo.Context) (string, error) {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		body, release, err := readBody(c)
		if err != nil {
			return "", err
		}
		defer release()
		if len(strings.TrimSpace(string(body))) > 0 {
			var req struct {
				Title *string `json:"title"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				return "", badRequest("body must be a JSON object like {\"title\": \"name\"}: %v", err)
			}
			if req.Title == nil {
				return "", badRequest("missing \"title\" in the JSON body")
			}
			return *req.Title, nil
		}
	}
	if t := c.FormValue("title"); t != "" {
		return t, nil
	}
	return "", badRequest("missing title")
}

// createDoc is #13: a new document for the current user.
func (s *Server) createDoc(c echo.Context) error {
	u, err := s.requireUser(c)
	if err != nil {
		return err
	}
	title, err := docTitle(c)
	if err != nil {
		return err
	}
	user, _, err := s.newDocument(c.Request().Context(), u.Username, title)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, publicUser(user))
}

// deleteDoc is #14: unlink the document from the user's list (its record and models stay, as
// in the original: other users and published links may still use it).
func (s *Server) deleteDoc(c echo.Context) error {
	u, err := s.requireUser(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	docid := c.Param("docid")
	unlock := s.locks.lock("user:" + u.Username)
	defer unlock()
	user, err := s.loadUser(ctx, u.Username)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(user.Docs, func(d storage.DocEntry) bool { return d.DocID == docid })
	if i < 0 {
		return conflict("document %q is not in the list of %q", docid, u.Username)
	}
	user.Docs = slices.Delete(user.Docs, i, i+1)
	if err := s.store.PutUser(ctx, user); err != nil {
		return err
	}
	s.publishDocChange(user.Username)
	return c.JSON(http.StatusOK, publicUser(user))
}

// docByTitle is #15: find the user's document by title, creating it if absent, and answer
// like #16. A GET that creates, so never a drive-by (checkStateChangingGET).
func (s *Server) docByTitle(c echo.Context) error {
	if err := s.checkStateChangingGET(c); err != nil {
		return err
	}
	u, err := s.requireUser(c)
	if err != nil {
		return err
	}
	title, err := docTitle(c)
	if err != nil {
		return err
	}
	docid := ""
	for _, d := range u.Docs {
		if d.Title == title {
			docid = d.DocID
			break
		}
	}
	if docid == "" {
		_, doc, err := s.newDocument(c.Request().Context(), u.Username, title)
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusConflict {
			// Created concurrently by another request: use that one.
			return s.docByTitle(c)
		}
		if err != nil {
			return err
		}
		docid = doc.DocID
	}
	return s.writeDocInfo(c, docid)
}

// docInfo is #16 and #17.
func (s *Server) docInfo(c echo.Context) error {
	return s.writeDocInfo(c, c.Param("docid"))
}

// writeDocInfo answers {"plot_context_ref", "docid", "all_models", "apikey"} with the
// readonly key (0.8.2), for browsers: bare NaN tokens become strings.
// Without a scratch copy, concurrent requests share builds (sharedreads.go).
func (s *Server) writeDocInfo(c echo.Context, docid string) error {
	a, err := s.authorizeRead(c, docid, true)
	if err != nil {
		return err
	}
	build := func(ctx context.Context) ([]byte, error) {
		d, err := s.loadModels(ctx, a)
		if err != nil {
			return nil, err
		}
		out := appendInfoHead(nil, a.doc)
		out = appendModelList(out, d.reachable(), nil)
		return rawjson.Sanitize(append(out, '}')), nil
	}
	var body []byte
	if a.temp == "" && s.infoReads != nil {
		body, err = s.infoReads.do(c.Request().Context(), a.doc.DocID, build)
	} else {
		body, err = build(c.Request().Context())
	}
	if err != nil {
		return err
	}
	return jsonBytes(c, body)
}

func appendInfoHead(dst []byte, doc storage.Doc) []byte {
	dst = append(dst, `{"plot_context_ref": {"type": `...)
	dst = rawjson.AppendString(dst, doc.PlotContextRef.Type)
	dst = append(dst, `, "id": `...)
	dst = rawjson.AppendString(dst, doc.PlotContextRef.ID)
	dst = append(dst, `}, "docid": `...)
	dst = rawjson.AppendString(dst, doc.DocID)
	dst = append(dst, `, "apikey": `...)
	dst = rawjson.AppendString(dst, doc.ReadOnlyAPIKey)
	return append(dst, `, "all_models": `...)
}

// objInfo is #18: the object, everything it references, and its type.
func (s *Server) objInfo(c echo.Context) error {
	a, d, err := s.readDocument(c, c.Param("docid"))
	if err != nil {
		return err
	}
	objid := c.Param("objid")
	reach := make(map[string]bool)
	for _, id := range d.closure(d.root) {
		reach[id] = true
	}
	if !reach[objid] {
		return notFound("no object %q in document %q", objid, a.doc.DocID)
	}
	ids := d.closure(objid)
	models := make([]storage.Model, len(ids))
	for i, id := range ids {
		models[i] = d.byID[id]
	}
	out := appendInfoHead(nil, a.doc)
	out = appendModelList(out, models, nil)
	out = append(out, `, "type": `...)
	out = rawjson.AppendString(out, d.byID[objid].Type)
	out = append(out, '}')
	return jsonBytes(c, rawjson.Sanitize(out))
}

// getDocAPIKey is #19: the write key to writers, the readonly key to readers, else 401.
func (s *Server) getDocAPIKey(c echo.Context) error {
	a, err := s.authorize(c, c.Param("docid"), false)
	if err != nil {
		return err
	}
	switch {
	case a.write:
		return c.JSON(http.StatusOK, map[string]string{"apikey": a.doc.APIKey})
	case a.read:
		return c.JSON(http.StatusOK, map[string]string{"readonlyapikey": a.doc.ReadOnlyAPIKey})
	}
	return errUnauthorized
}

// publishDoc is #46: make the document readable by everyone (there is no unpublish).
func (s *Server) publishDoc(c echo.Context) error {
	docid := c.Param("docid")
	a, err := s.authorizeWrite(c, docid, false)
	if err != nil {
		return err
	}
	if !a.doc.Published {
		ctx := c.Request().Context()
		defer s.locks.lock("doc:" + docid)()
		doc, err := s.store.Doc(ctx, docid) // fresh, not cached: we write it back
		if err != nil {
			return err
		}
		doc.Published = true
		if err := s.saveDoc(ctx, doc); err != nil {
			return err
		}
	}
	return jsonBytes(c, []byte(`{"status": "success"}`))
}

// userInfo is #20.
func (s *Server) userInfo(c echo.Context) error {
	u, err := s.requireUser(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, publicUser(*u))
}

// internalDocKeys tells websocket workers a document's keys, for subscribe auth (§5.3).
func (s *Server) internalDocKeys(c echo.Context) error {
	if !keyEquals(c.Request().Header.Get(workerapi.InternalTokenHeader), s.token) {
		return echo.NewHTTPError(http.StatusUnauthorized, "bad internal token")
	}
	doc, err := s.loadDoc(c.Request().Context(), c.Param("docid"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, workerapi.DocKeys{APIKey: doc.APIKey, ReadOnlyAPIKey: doc.ReadOnlyAPIKey})
}
