package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// cors adds the §2.1 CORS headers. Allowed headers are the preflight's requested ones echoed
// back: in public mode BokehJS sends a header named temporary-<docid>, which no fixed list
// can name. Unlike the original (Access-Control-Allow-Origin: * everywhere), only allowed
// origins are granted, and any origin only where the answer is public anyway: the websocket
// URL, static files, autoload.js, and routes of a published document (which
// autoload_server(public=True) embeds on any site need). A refused request is refused by the
// server too (see authorize), not only by the browser. Errors carry the grant as well, so an
// allowed page can read why a request failed.
func (s *Server) cors(methods string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Add("Vary", "Origin")
			origin := c.Request().Header.Get("Origin")
			switch {
			case origin == "":
			case s.siteOf(c.Request()) != siteForeign:
				h.Set("Access-Control-Allow-Origin", origin)
			case s.publicRoute(c):
				h.Set("Access-Control-Allow-Origin", "*")
			default:
				return next(c) // no grant: the browser keeps the answer from the page
			}
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Max-Age", "21600")
			if req := c.Request().Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			}
			return next(c)
		}
	}
}

// publicRoute reports whether the route's answers are public: always (wsurl, static files,
// autoload.js) or because the document named in the URL is published.
func (s *Server) publicRoute(c echo.Context) bool {
	route := strings.TrimPrefix(c.Path(), s.cfg.URLPrefix)
	for _, p := range []string{"/bokeh/wsurl", "/bokeh/autoload.js/", "/bokehjs/static/", "/bokeh/static/", "/static/"} {
		if strings.HasPrefix(route, p) {
			return true
		}
	}
	if docid := c.Param("docid"); docid != "" && strings.Contains(route, ":docid") && !strings.HasSuffix(route, "/show") {
		doc, err := s.loadDoc(c.Request().Context(), docid)
		return err == nil && doc.Published
	}
	return false
}

// preflight answers OPTIONS without running auth (§2.1).
func (s *Server) preflight(c echo.Context) error {
	if m := c.Response().Header().Get("Access-Control-Allow-Methods"); m != "" {
		c.Response().Header().Set("Allow", m)
	}
	return c.NoContent(http.StatusOK)
}
