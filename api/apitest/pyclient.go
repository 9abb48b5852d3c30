package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// PyClient behaves like bokeh 0.8.2's Python Session (§7.1): the same URLs, headers, bodies
// and status handling, so tests replay exactly what unchanged scripts send.
type PyClient struct {
	Root       string // root URL ending in '/', e.g. http://127.0.0.1:5006/
	Username   string
	UserAPIKey string
	DocID      string
	APIKey     string // document key from getdocapikey
	HTTP       *http.Client
}

// NewPyClient is Session(root_url=root) with the default credentials.
func NewPyClient(root string) *PyClient {
	if !strings.HasSuffix(root, "/") {
		root += "/"
	}
	jar, _ := cookiejar.New(nil)
	return &PyClient{Root: root, Username: "defaultuser", UserAPIKey: "nokey",
		HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// Response is a raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("status %d: body is not JSON (%v): %.300s", r.Status, err, r.Body)
	}
}

// Do sends a request the way the Python session does: BOKEHUSER headers always, JSON
// content type on JSON calls (even GETs and empty POSTs).
func (c *PyClient) Do(tb testing.TB, method, rel string, body []byte, jsonCall bool) *Response {
	tb.Helper()
	u := c.Root + rel
	if strings.HasPrefix(rel, "/") { // publish resolves an absolute path against the root
		base, _ := url.Parse(c.Root)
		u = base.Scheme + "://" + base.Host + rel
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("request %s %s: %v", method, u, err)
	}
	req.Header.Set("BOKEHUSER", c.Username)
	req.Header.Set("BOKEHUSER-API-KEY", c.UserAPIKey)
	if jsonCall {
		req.Header.Set("content-type", "application/json")
	}
	return c.send(tb, req)
}

func (c *PyClient) send(tb testing.TB, req *http.Request) *Response {
	tb.Helper()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// must checks a status like the Python client would have to succeed.
func must(tb testing.TB, r *Response, what string) *Response {
	tb.Helper()
	if r.Status != http.StatusOK {
		tb.Fatalf("%s: status %d, body %.300s", what, r.Status, r.Body)
	}
	return r
}

// UserInfo is GET bokeh/userinfo/.
type UserInfo struct {
	Username string `json:"username"`
	Docs     []struct {
		DocID string `json:"docid"`
		Title string `json:"title"`
	} `json:"docs"`
}

func (c *PyClient) UserInfo(tb testing.TB) UserInfo {
	tb.Helper()
	var u UserInfo
	must(tb, c.Do(tb, "GET", "bokeh/userinfo/", nil, true), "userinfo").JSON(tb, &u)
	return u
}

// UseDoc is use_doc(name): find the doc by title or make it, then fetch its key.
func (c *PyClient) UseDoc(tb testing.TB, title string) {
	tb.Helper()
	find := func(u UserInfo) string {
		for _, d := range u.Docs {
			if d.Title == title {
				return d.DocID
			}
		}
		return ""
	}
	docid := find(c.UserInfo(tb))
	if docid == "" {
		body, _ := json.Marshal(map[string]string{"title": title})
		var u UserInfo
		must(tb, c.Do(tb, "POST", "bokeh/doc/", body, true), "make_doc").JSON(tb, &u)
		docid = find(u)
	}
	if docid == "" {
		tb.Fatalf("use_doc(%q): document not listed after make_doc", title)
	}
	c.DocID = docid
	var keys map[string]string
	must(tb, c.Do(tb, "GET", "bokeh/getdocapikey/"+docid, nil, true), "getdocapikey").JSON(tb, &keys)
	c.APIKey = keys["apikey"]
	if c.APIKey == "" {
		c.APIKey = keys["readonlyapikey"]
	}
}

// GC is gc(): POST bokeh/bb/<docid>/gc with an empty JSON body.
func (c *PyClient) GC(tb testing.TB) *Response {
	tb.Helper()
	return c.Do(tb, "POST", "bokeh/bb/"+c.DocID+"/gc", nil, true)
}

// Pull is pull(): every model of the document.
func (c *PyClient) Pull(tb testing.TB) []Model {
	tb.Helper()
	var models []Model
	must(tb, c.Do(tb, "GET", "bokeh/bb/"+c.DocID+"/", nil, true), "pull").JSON(tb, &models)
	return models
}

// LoadDocument is load_document(): gc, then pull; it returns the PlotContext and all models.
func (c *PyClient) LoadDocument(tb testing.TB) (Model, []Model) {
	tb.Helper()
	must(tb, c.GC(tb), "gc")
	models := c.Pull(tb)
	for _, m := range models {
		if m.Type == "PlotContext" {
			return m, models
		}
	}
	tb.Fatalf("load_document: no PlotContext among %d models", len(models))
	return Model{}, nil
}

// Push is push()/store_objects(): POST bokeh/bb/<docid>/bulkupsert.
func (c *PyClient) Push(tb testing.TB, body []byte) *Response {
	tb.Helper()
	return c.Do(tb, "POST", "bokeh/bb/"+c.DocID+"/bulkupsert", body, true)
}

// Publish is publish(): POST /bokeh/<docid>/publish, an absolute path.
func (c *PyClient) Publish(tb testing.TB) *Response {
	tb.Helper()
	return c.Do(tb, "POST", "/bokeh/"+c.DocID+"/publish", nil, true)
}

// Register and Login are register()/login(): form posts with api=true.
func (c *PyClient) Register(tb testing.TB, user, password string) map[string]any {
	tb.Helper()
	return c.authForm(tb, "bokeh/register", user, password)
}

func (c *PyClient) Login(tb testing.TB, user, password string) map[string]any {
	tb.Helper()
	return c.authForm(tb, "bokeh/login", user, password)
}

func (c *PyClient) authForm(tb testing.TB, rel, user, password string) map[string]any {
	tb.Helper()
	form := url.Values{"username": {user}, "password": {password}, "api": {"true"}}
	req, err := http.NewRequest("POST", c.Root+rel, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("BOKEHUSER", c.Username)
	req.Header.Set("BOKEHUSER-API-KEY", c.UserAPIKey)
	var out map[string]any
	must(tb, c.send(tb, req), rel).JSON(tb, &out)
	if out["status"] == true {
		c.Username = user
		c.UserAPIKey, _ = out["userapikey"].(string)
	}
	return out
}

// Browse is a browser's GET of a page: no Python headers, this client's cookies, and the
// Sec-Fetch-Site the browser would send ("none" for an address typed or opened by a
// program, "same-origin" for a link on this server's pages, "cross-site" from elsewhere).
func (c *PyClient) Browse(tb testing.TB, rel, fetchSite string) *Response {
	tb.Helper()
	req, err := http.NewRequest("GET", c.Root+rel, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", fetchSite)
	return c.send(tb, req)
}

// PostForm is a browser's form post to rel with this client's cookies and the given headers
// (Origin, Sec-Fetch-Site).
func (c *PyClient) PostForm(tb testing.TB, rel string, form url.Values, header map[string]string) *Response {
	tb.Helper()
	req, err := http.NewRequest("POST", c.Root+rel, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.send(tb, req)
}

// Cookies returns the cookies this client holds for its server.
func (c *PyClient) Cookies() []*http.Cookie {
	u, _ := url.Parse(c.Root)
	return c.HTTP.Jar.Cookies(u)
}

// SetCookies gives this client cookies (of another client, say).
func (c *PyClient) SetCookies(cookies []*http.Cookie) {
	u, _ := url.Parse(c.Root)
	c.HTTP.Jar.SetCookies(u, cookies)
}

// Get is a plain GET without the Python client's headers (a browser or curl).
func Get(tb testing.TB, u string, header map[string]string) *Response {
	tb.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return (&PyClient{HTTP: noRedirects}).send(tb, req)
}

// noRedirects lets tests see 302s instead of following them.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// String describes the client for failure messages.
func (c *PyClient) String() string {
	return fmt.Sprintf("client(%s as %s, doc %s)", c.Root, c.Username, c.DocID)
}
