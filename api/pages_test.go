package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
)

// BokehJS takes its URL prefix from the page URL, so the index at P/ would talk to the
// unprefixed /bokeh/...: with a prefix it sends the browser to P/bokeh/ (relative Location).
func TestIndexAtPrefixRoot(t *testing.T) {
	a := newTestAPI(t, api.Config{URLPrefix: "/plots"})
	r := apitest.Get(t, a.root, nil)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "bokeh/" {
		t.Errorf("GET P/: %d Location %q, want 302 to bokeh/", r.Status, r.Header.Get("Location"))
	}
	if r := apitest.Get(t, a.root+"bokeh/", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "server_page()") {
		t.Errorf("GET P/bokeh/: %d", r.Status)
	}
	plain := newTestAPI(t, api.Config{})
	if r := apitest.Get(t, plain.root, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "server_page()") {
		t.Errorf("GET / without a prefix: %d, want the index page", r.Status)
	}
}

// Document lists of multi-user pages name their user for live.js (docchange notices go to
// bokehuser:<user>, while BokehJS listens to bokehuser:defaultuser).
func TestIndexNamesItsUser(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	c := apitest.NewPyClient(a.root)
	if out := c.Register(t, "erin", "erin-password-1"); out["status"] != true {
		t.Fatalf("register: %v", out)
	}
	r := c.Do(t, "GET", "bokeh/", nil, false)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `data-user="erin"`) {
		t.Errorf("multi-user index: %d, no data-user: %.2000s", r.Status, r.Body)
	}
	single := newTestAPI(t, api.Config{})
	if r := apitest.Get(t, single.root+"bokeh/", nil); strings.Contains(string(r.Body), "data-user") {
		t.Errorf("single-user index names a user")
	}
}
