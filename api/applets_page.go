package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/storage"
)

// generatedClass is one [module, class, parent] of an applet object's
// extra_generated_classes: its stub is loaded from jsgenerate before bokeh.js.
type generatedClass struct {
	Module, Class, Parent string
}

// appletPageData is what templates/applet.html sees.
type appletPageData struct {
	pageData
	Classes []generatedClass
}

// hopHeaders are not relayed from a script's own Flask response.
var hopHeaders = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Date": true, "Server": true}

// appletRoute serves one of the script's routes. For an object_page route it does what the
// original's object_page did: a new published document (title prefix+uuid4, owned by the
// visitor, or by nobody for an anonymous one), the models the host builds into it, and the
// one-object page in public mode. Nothing is stored when the host fails. Unlike 0.8.2 the
// document is not added to the visitor's document list, and it is deleted once unused for
// the applet TTL.
func (s *Server) appletRoute(rt applet.Route) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.currentUser(c)
		if err != nil {
			return err
		}
		body, release, err := readBody(c)
		if err != nil {
			return err
		}
		body = bytes.Clone(body)
		release()
		docid, pcid := uuid.NewString(), uuid.NewString()
		call := applet.RouteCall{
			Request:  s.appletRequest(c, u),
			Endpoint: rt.Endpoint,
			DocID:    docid,
			PlotContext: fmt.Appendf(nil, `[{"type": "PlotContext", "id": %q, "attributes": `+
				`{"children": [], "tags": [], "id": %q, "doc": %q}}]`, pcid, pcid, docid),
			Body: body,
		}
		res, err := s.applets.host.Route(c.Request().Context(), call)
		if err != nil {
			return s.appletError(c, "page", err)
		}
		if res.Kind == "response" {
			return relayResponse(c, res)
		}
		title := docid
		if rt.ObjectPage != nil {
			title = *rt.ObjectPage + uuid.NewString()
		}
		if err := s.storeAppletDoc(c, u, docid, pcid, title, res); err != nil {
			return err
		}
		return s.renderApplet(c, docid, res)
	}
}

func relayResponse(c echo.Context, res applet.RouteResult) error {
	h := c.Response().Header()
	ctype := ""
	for _, kv := range res.Headers {
		k := http.CanonicalHeaderKey(kv[0])
		if hopHeaders[k] {
			continue
		}
		if k == echo.HeaderContentType {
			ctype = kv[1]
			continue
		}
		h.Add(k, kv[1])
	}
	if res.Status < 100 || res.Status > 999 {
		res.Status = http.StatusBadGateway
	}
	return c.Blob(res.Status, ctype, res.Body)
}

// storeAppletDoc stores what the host built: its expiry first (so that the sweep deletes
// whatever a failure part way leaves), then the models, then the Doc record.
func (s *Server) storeAppletDoc(c echo.Context, u *storage.User, docid, pcid, title string, res applet.RouteResult) error {
	ctx := c.Request().Context()
	in, _, err := parseBulk(res.Models)
	if err != nil {
		return fmt.Errorf("applet page: the host's models: %w", err)
	}
	if !hasModel(in, "PlotContext", pcid) || !hasModel(in, "", res.ObjID) {
		return fmt.Errorf("applet page: the host's models lack the PlotContext %s or the object %q", pcid, res.ObjID)
	}
	models, _ := appletModels(in, docid)
	doc := storage.Doc{
		DocID:          docid,
		Title:          title,
		RWUsers:        []string{},
		RUsers:         []string{},
		PlotContextRef: storage.Ref{Type: "PlotContext", ID: pcid},
		APIKey:         newKey(),
		ReadOnlyAPIKey: newKey(),
		Published:      true,
	}
	if u != nil {
		doc.RWUsers = []string{u.Username}
	}
	if err := s.store.SetDocExpiry(ctx, docid, s.appletExpiry(time.Now())); err != nil {
		return fmt.Errorf("applet page: %w", err)
	}
	if err := s.store.PutModels(ctx, storage.Scope{DocID: docid}, models); err != nil {
		return fmt.Errorf("applet page: store models: %w", err)
	}
	if err := s.saveDoc(ctx, doc); err != nil {
		return fmt.Errorf("applet page: store doc: %w", err)
	}
	return nil
}

func hasModel(in []incoming, typ, id string) bool {
	for _, m := range in {
		if m.id == id && (typ == "" || m.typ == typ) {
			return true
		}
	}
	return false
}

// renderApplet renders the original's oneobj.html for the applet object: the class stubs
// before bokeh.js, their main() after it, then add_plot_server in public mode.
func (s *Server) renderApplet(c echo.Context, docid string, res applet.RouteResult) error {
	d := appletPageData{pageData: pageData{
		Kind: "object", HideNavbar: true, DocID: docid, ObjID: res.ObjID, Public: true,
		Link: c.Request().URL.RequestURI(), Prefix: s.cfg.URLPrefix, MultiUser: s.cfg.MultiUser,
		MissingBokehJS: !s.pages.bokehJSBuilt(), BokehJSDir: s.pages.bokehJSDir, LogLevel: "info",
	}}
	for _, g := range res.ExtraGeneratedClasses {
		gc := generatedClass{Module: g[0], Class: g[1], Parent: g[2]}
		for _, v := range g {
			if !jsIdentifier.MatchString(v) {
				return fmt.Errorf("applet page: extra_generated_classes %v: %q is not a JavaScript identifier", g, v)
			}
		}
		d.Classes = append(d.Classes, gc)
	}
	var buf strings.Builder
	if err := s.applets.page.ExecuteTemplate(&buf, "base", d); err != nil {
		return fmt.Errorf("render applet page: %w", err)
	}
	return c.HTML(http.StatusOK, buf.String())
}
