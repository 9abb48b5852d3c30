package api

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	texttemplate "text/template"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
)

//go:embed web/templates web/static
var webFS embed.FS

// pages renders the HTML pages of §6 and autoload.js.
type pages struct {
	prefix     string
	bokehJSDir string
	html       map[string]*template.Template
	autoload   *texttemplate.Template
}

// pageData is what every page template sees. Everything user-supplied is escaped by
// html/template, in HTML and in script contexts alike.
type pageData struct {
	Prefix         string
	NavTitle       string
	HideNavbar     bool
	MultiUser      bool
	Username       string
	Flash          string
	CSRF           string
	MissingBokehJS bool
	BokehJSDir     string
	LogLevel       string

	Kind   string // "index", "show" or "object"
	Title  string
	DocID  string
	ObjID  string
	Public bool
	Link   string
	Next   string // where the login form returns to

	UserTopicAuth string // subscribe auth of the user's docchange topic (multi-user lists)
}

func newPages(prefix, bokehJSDir string) (*pages, error) {
	p := &pages{prefix: prefix, bokehJSDir: bokehJSDir, html: map[string]*template.Template{}}
	for _, name := range []string{"bokeh", "login", "register"} {
		t, err := template.ParseFS(webFS, "web/templates/base.html", "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("page template %s: %w", name, err)
		}
		p.html[name] = t
	}
	var err error
	p.autoload, err = texttemplate.ParseFS(webFS, "web/templates/autoload.js")
	if err != nil {
		return nil, fmt.Errorf("autoload template: %w", err)
	}
	return p, nil
}

// bokehJSBuilt reports whether the BokehJS build the pages load is present.
func (p *pages) bokehJSBuilt() bool {
	_, err := os.Stat(filepath.Join(p.bokehJSDir, "js", "bokeh.js"))
	return err == nil
}

func (s *Server) render(c echo.Context, status int, name string, d pageData) error {
	d.Prefix = s.cfg.URLPrefix
	d.MultiUser = s.cfg.MultiUser
	d.MissingBokehJS = name == "bokeh" && !s.pages.bokehJSBuilt()
	d.BokehJSDir = s.pages.bokehJSDir
	if d.LogLevel == "" {
		d.LogLevel = "info"
	}
	d.Flash = s.takeFlash(c.Response(), c.Request())
	var buf bytes.Buffer
	if err := s.pages.html[name].ExecuteTemplate(&buf, "base", d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// indexPage is #23/#24: the user's documents, rendered by BokehJS's server_page().
func (s *Server) indexPage(c echo.Context) error {
	u, sid, err := s.currentSession(c)
	if err != nil {
		return err
	}
	if u == nil {
		return s.redirect(c, "/bokeh/login")
	}
	return s.render(c, http.StatusOK, "bokeh", pageData{
		Kind: "index", NavTitle: "Bokeh Documents for " + u.Username, Username: u.Username,
		UserTopicAuth: s.userTopicAuth(u.Username, sid),
	})
}

// userTopicAuth is what a document list page sends to subscribe to its user's docchange
// notices: in multi-user mode a token of the page's session (see wsUserToken).
func (s *Server) userTopicAuth(username, sid string) string {
	if !s.cfg.MultiUser || sid == "" {
		return ""
	}
	return s.wsUserToken(username, sid)
}

// rootIndex is #23 at P/. BokehJS takes its URL prefix from the page URL (everything before
// the last "/bokeh", else "/"), so with a non-empty P the index at P/ would send every XHR to
// the unprefixed /bokeh/... (§6.1): send the browser to P/bokeh/ instead. The Location is
// relative so that it also holds behind a proxy that adds a path of its own.
func (s *Server) rootIndex(c echo.Context) error {
	if s.cfg.URLPrefix != "" {
		return c.Redirect(http.StatusFound, "bokeh/")
	}
	return s.indexPage(c)
}

// showPage is #25: one of the user's documents by title.
func (s *Server) showPage(c echo.Context) error {
	u, sid, err := s.currentSession(c)
	if err != nil {
		return err
	}
	if u == nil {
		return errLoginNeeded
	}
	title := c.Param("docid")
	for _, d := range u.Docs {
		if d.Title == title {
			return s.render(c, http.StatusOK, "bokeh", pageData{
				Kind: "show", Title: title, NavTitle: "Bokeh Documents for " + u.Username, Username: u.Username,
				UserTopicAuth: s.userTopicAuth(u.Username, sid),
			})
		}
	}
	return notFound("no document titled %q", title)
}

// objectPage is #26: one object of a document; anonymous visitors need a published doc.
func (s *Server) objectPage(c echo.Context) error {
	docid, objid := c.Param("docid"), c.Param("objid")
	doc, err := s.loadDoc(c.Request().Context(), docid)
	if err != nil {
		return err
	}
	u, err := s.currentUser(c)
	if err != nil {
		return err
	}
	if u == nil && !doc.Published {
		next := s.requestURL(c.Request())
		return c.Redirect(http.StatusFound, s.cfg.URLPrefix+"/bokeh/login?next="+url.QueryEscape(next))
	}
	d := pageData{
		Kind: "object", HideNavbar: true, DocID: docid, ObjID: objid,
		Public: strings.EqualFold(c.QueryParam("public"), "true"),
		Link:   c.Request().URL.RequestURI(),
	}
	if u != nil {
		d.Username = u.Username
	}
	// The title only for who may read the document: a logged-in user with no right to it
	// learns nothing from the page (its data requests are refused anyway).
	if a, err := s.authorize(c, docid, false); err == nil && a.read {
		d.Title = doc.Title
	}
	return s.render(c, http.StatusOK, "bokeh", d)
}

// localRedirect returns target as a path on this server ("" when it points elsewhere), so a
// login "next" parameter cannot send people to another site.
func localRedirect(r *http.Request, target string) string {
	u, err := url.Parse(target)
	if err != nil || target == "" {
		return ""
	}
	if u.Host != "" && !strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	if !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "\\") {
		return ""
	}
	return (&url.URL{Path: u.Path, RawQuery: u.RawQuery}).String()
}

// requestURL rebuilds the absolute URL of the request.
func (s *Server) requestURL(r *http.Request) string {
	return s.scheme(r) + "://" + r.Host + r.URL.RequestURI()
}

func (s *Server) loginPage(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	return s.render(c, http.StatusOK, "login", pageData{NavTitle: "Bokeh Plot Server", CSRF: s.csrfToken(c),
		Next: localRedirect(c.Request(), c.QueryParam("next"))})
}

func (s *Server) registerPage(c echo.Context) error {
	if !s.cfg.MultiUser {
		return errSingleUser
	}
	return s.render(c, http.StatusOK, "register", pageData{NavTitle: "Bokeh Plot Server", CSRF: s.csrfToken(c)})
}

// elementIDPattern limits autoload element ids to what autoload_server generates (uuid4)
// and similar tokens, since they are written into a script.
var elementIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// autoloadJS is #27: the script an autoload_server tag loads (§6.3).
func (s *Server) autoloadJS(c echo.Context) error {
	id := c.Param("elementid")
	if !elementIDPattern.MatchString(id) {
		return badRequest("element id %q: only letters, digits, '-' and '_' are allowed", id)
	}
	root := s.rootURL(c.Request())
	js, css := "bokehjs/static/js/bokeh.min.js", "bokehjs/static/css/bokeh.min.css"
	if os.Getenv("BOKEH_MINIFIED") == "false" {
		js, css = "bokehjs/static/js/bokeh.js", "bokehjs/static/css/bokeh.css"
	}
	data := map[string]string{
		"ElementID":     id,
		"ElementIDJSON": string(rawjson.AppendString(nil, id)),
		"JSURLJSON":     string(rawjson.AppendString(nil, root+js)),
		"CSSURLsJSON":   "[" + string(rawjson.AppendString(nil, root+css)) + "]",
		"LiveURLJSON":   string(rawjson.AppendString(nil, root+"bokeh/static/live.js")),
	}
	var buf bytes.Buffer
	if err := s.pages.autoload.Execute(&buf, data); err != nil {
		return fmt.Errorf("render autoload.js: %w", err)
	}
	return c.Blob(http.StatusOK, "application/javascript", buf.Bytes())
}

// rootURL is scheme://host/ + P without its leading slash, ending in '/' (§2.4 #27).
func (s *Server) rootURL(r *http.Request) string {
	root := s.scheme(r) + "://" + r.Host + "/"
	if p := strings.Trim(s.cfg.URLPrefix, "/"); p != "" {
		root += p + "/"
	}
	return root
}
