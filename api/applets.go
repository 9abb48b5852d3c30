package api

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/storage"
)

// Applets (bokeh-server --script, APPLETS.md): the script's routes are served by asking the
// applet host to build models into a document this server creates, and model writes to a
// document holding a type with callbacks go through the host, which runs the callbacks and
// answers the models they changed. Storage, users, permissions and websockets stay here.

// applets is the API's side of the applet host.
type applets struct {
	host          *applet.Host
	callbackTypes map[string]bool
	page          *template.Template
	queue         *fifoLocks
}

func newApplets(h *applet.Host) (*applets, error) {
	page, err := template.ParseFS(webFS, "web/templates/base.html", "web/templates/applet.html")
	if err != nil {
		return nil, fmt.Errorf("applet page template: %w", err)
	}
	a := &applets{host: h, callbackTypes: map[string]bool{}, page: page, queue: newFIFOLocks()}
	for _, t := range h.Info().CallbackTypes {
		a.callbackTypes[t] = true
	}
	return a, nil
}

// addAppletRoutes serves the script's routes under the prefix. A rule that would replace one
// of this server's own routes is refused: every other route stays this server's.
func (s *Server) addAppletRoutes() error {
	if s.applets == nil {
		return nil
	}
	own := map[string]string{}
	for _, r := range s.echo.Routes() {
		own[r.Method+" "+routeShape(r.Path)] = r.Path
	}
	for _, rt := range s.applets.host.Info().Routes {
		path, slash := echoPath(rt.Rule)
		full := s.cfg.URLPrefix + path
		for _, m := range rt.Methods {
			if p, taken := own[m+" "+routeShape(full)]; taken {
				return fmt.Errorf("applet route %s %s would replace this server's route %s: give it another path", m, rt.Rule, p)
			}
			s.echo.Add(m, full, s.appletRoute(rt))
			// Werkzeug answers a rule's path without its trailing slash with a redirect.
			if alt := strings.TrimSuffix(full, "/"); slash && alt != "" && m == http.MethodGet {
				if _, taken := own[m+" "+routeShape(alt)]; !taken {
					s.echo.Add(m, alt, redirectToSlash)
				}
			}
		}
	}
	return nil
}

// converterPattern matches a Werkzeug rule variable: <name>, <int:name>, <any(a, b):name>.
var converterPattern = regexp.MustCompile(`<(?:([A-Za-z_]\w*)(?:\([^)]*\))?:)?([A-Za-z_]\w*)>`)

// echoPath turns a Werkzeug rule into an echo path that matches at least what the rule
// does (the host matches exactly): a segment holding a variable becomes a parameter, a path
// variable the rest of the path. slash reports a rule ending in '/'.
func echoPath(rule string) (path string, slash bool) {
	segs := strings.Split(rule, "/")
	for i, seg := range segs {
		m := converterPattern.FindStringSubmatch(seg)
		if m == nil {
			continue
		}
		if m[1] == "path" {
			segs = append(segs[:i], "*")
			return strings.Join(segs, "/"), false
		}
		segs[i] = ":" + m[2]
	}
	return strings.Join(segs, "/"), strings.HasSuffix(rule, "/")
}

// routeShape is a route path with its parameter names dropped, so that two paths echo
// would treat as one compare equal.
func routeShape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = ":"
		}
	}
	return strings.Join(segs, "/")
}

func redirectToSlash(c echo.Context) error {
	u := *c.Request().URL
	u.Path += "/"
	u.RawPath = ""
	return c.Redirect(http.StatusMovedPermanently, u.RequestURI())
}

// isAppletDoc reports whether the document holds a model whose type attaches callbacks.
func (a *applets) isAppletDoc(models []storage.Model) bool {
	for _, m := range models {
		if a.callbackTypes[m.Type] {
			return true
		}
	}
	return false
}

// appletRequest is the HTTP request as the script sees it (flask.request).
func (s *Server) appletRequest(c echo.Context, user *storage.User) applet.Request {
	r := c.Request()
	var headers [][2]string
	for k, vs := range r.Header {
		for _, v := range vs {
			headers = append(headers, [2]string{k, v})
		}
	}
	if r.Host != "" {
		headers = append(headers, [2]string{"Host", r.Host})
	}
	req := applet.Request{
		Method:  r.Method,
		Path:    strings.TrimPrefix(r.URL.Path, s.cfg.URLPrefix),
		Query:   r.URL.RawQuery,
		BaseURL: strings.TrimSuffix(s.rootURL(r), "/"),
		Headers: headers,
	}
	if user != nil {
		req.User = &user.Username
	}
	return req
}

// appletError turns a failed host call into a response; the details go to the log only.
func (s *Server) appletError(c echo.Context, what string, err error) error {
	var se *applet.ScriptError
	switch {
	case errors.As(err, &se):
		s.log.Error("applet "+what+" failed: the script raised", "path", c.Request().URL.Path, "err", se.Message)
		return echo.NewHTTPError(http.StatusInternalServerError,
			"the applet's code raised an exception; nothing was changed (details in the server log)")
	case errors.Is(err, applet.ErrUnavailable):
		s.log.Warn("applet "+what+": host unavailable", "path", c.Request().URL.Path, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable,
			"the applet host is restarting; nothing was changed, retry shortly")
	case errors.Is(err, applet.ErrTimeout):
		s.log.Error("applet "+what+" timed out", "path", c.Request().URL.Path, "err", err)
		return echo.NewHTTPError(http.StatusGatewayTimeout,
			"the applet's code did not finish in time; nothing was changed")
	}
	return fmt.Errorf("applet %s: %w", what, err)
}

// appletExpiry is when an applet document last used at now may be deleted.
func (s *Server) appletExpiry(now time.Time) time.Time {
	ttl := s.cfg.AppletTTL
	if ttl <= 0 {
		ttl = storage.DefaultOverlayTTL
	}
	return now.Add(ttl)
}

// jsIdentifier is what jsgenerate accepts for each name: it is written into a script.
var jsIdentifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]{0,127}$`)

// jsGenerate is #40: the stub that registers an applet's model class with BokehJS (the
// original's templates/app.js, byte for byte). It is served with a JavaScript type, not the
// original's text/html, so that browsers that refuse sniffing still run it.
func (s *Server) jsGenerate(c echo.Context) error {
	parent, module, class := c.Param("parent"), c.Param("module"), c.Param("class")
	for _, v := range []string{parent, module, class} {
		if !jsIdentifier.MatchString(v) {
			return badRequest("jsgenerate: %q is not a JavaScript identifier", v)
		}
	}
	js := strings.NewReplacer("{m}", module, "{c}", class, "{p}", parent).Replace(`window.{m} = {};
{m} = window.{m};
{m}.main = function(){
  {c}View  = Bokeh.{p}.View.extend({
  });
  {c} = Bokeh.{p}.Model.extend({
    type : "{c}",
    default_view : {c}View
  });
  {c}s = Backbone.Collection.extend({
    model : {c}
  });
  Bokeh.Collections.register("{c}", new {c}s ());
}`)
	return c.Blob(http.StatusOK, "application/javascript; charset=utf-8", []byte(js))
}
