package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
)

// principal is who sends a request: identity headers, a document key and/or a temporary id.
type principal struct {
	name    string
	user    *apitest.PyClient // identity by BOKEHUSER headers; nil for none
	docKey  string            // BOKEH-API-KEY
	temp    bool              // sends temporary-<docid>
	read    bool              // expected read permission (§2.2) on the doc under test
	write   bool              // expected write permission without a temporary id
	userOK  bool              // a current user exists (L routes)
	keyKind string            // what getdocapikey answers: "apikey", "readonlyapikey" or ""
}

// route is one doc-scoped request and the permission it needs.
type route struct {
	name   string
	method string
	path   string // %[1]s docid, %[2]s object id, %[3]s source id
	body   string
	class  string // R* (read, overlay with TMP), W* (write, or read with TMP), W, auto, L
}

var matrixRoutes = []route{
	{"pull", "GET", "bokeh/bb/%[1]s/", "", "R*"},
	{"by type", "GET", "bokeh/bb/%[1]s/Plot/", "", "R*"},
	{"one model", "GET", "bokeh/bb/%[1]s/Plot/%[2]s/", "", "R*"},
	{"bokehinfo", "GET", "bokeh/bokehinfo/%[1]s/", "", "R*"},
	{"doc info", "GET", "bokeh/doc/%[1]s/", "", "R*"},
	{"objinfo", "GET", "bokeh/objinfo/%[1]s/%[2]s", "", "R*"},
	{"put", "PUT", "bokeh/bb/%[1]s/ColumnDataSource/%[3]s/", `{"selected": [1]}`, "W*"},
	{"patch", "PATCH", "bokeh/bb/%[1]s/ColumnDataSource/%[3]s/", `{"selected": [2]}`, "W*"},
	{"create", "POST", "bokeh/bb/%[1]s/Range1d/", `{"start": 1}`, "W*"},
	{"bulkupsert", "POST", "bokeh/bb/%[1]s/bulkupsert", `[{"type": "Range1d", "attributes": {"id": "mx"}}]`, "W*"},
	{"gc", "POST", "bokeh/bb/%[1]s/gc", "", "W*"},
	{"getdocapikey", "GET", "bokeh/getdocapikey/%[1]s", "", "auto"},
	{"userinfo", "GET", "bokeh/userinfo/", "", "L"},
}

var publishRoute = route{"publish", "POST", "bokeh/%[1]s/publish", "", "W"}

// want returns the expected status of r for p.
func (r route) want(p principal) int {
	allowed := false
	switch r.class {
	case "R*":
		allowed = p.read
	case "W*":
		allowed = p.write || (p.temp && p.read)
	case "W":
		allowed = p.write
	case "auto":
		allowed = p.read || p.write
	case "L":
		allowed = p.userOK
	}
	if allowed {
		return http.StatusOK
	}
	return http.StatusUnauthorized
}

// TestAuthMatrix checks every doc-scoped route for every kind of caller, on an unpublished
// and on a published document, in multi-user mode: each allow and each deny (§2.2).
func TestAuthMatrix(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	alice, bob := apitest.NewPyClient(a.root), apitest.NewPyClient(a.root)
	alice.Register(t, "alice", "pw")
	bob.Register(t, "bob", "pw")

	cells, wrong := 0, 0
	for _, published := range []bool{false, true} {
		owner := apitest.NewPyClient(a.root)
		owner.Username, owner.UserAPIKey = alice.Username, alice.UserAPIKey
		owner.UseDoc(t, fmt.Sprintf("matrix-%v", published))
		ctx, _ := owner.LoadDocument(t)
		p := apitest.NewPlot(owner.DocID, ctx.ID, 5)
		if r := owner.Push(t, apitest.MarshalModels(t, p.Models)); r.Status != 200 {
			t.Fatalf("push: %d", r.Status)
		}
		var info struct {
			APIKey string `json:"apikey"`
		}
		owner.Do(t, "GET", "bokeh/bokehinfo/"+owner.DocID+"/", nil, true).JSON(t, &info)
		ro, rw := info.APIKey, owner.APIKey
		if published {
			owner.Publish(t)
		}
		pub := published
		principals := []principal{
			{name: "owner", user: owner, read: true, write: true, userOK: true, keyKind: "apikey"},
			{name: "other user", user: bob, read: pub, userOK: true, keyKind: ifs(pub, "readonlyapikey")},
			{name: "anonymous", read: pub, keyKind: ifs(pub, "readonlyapikey")},
			{name: "read-write key", docKey: rw, read: true, write: true, keyKind: "apikey"},
			{name: "read-only key", docKey: ro, read: true, keyKind: "readonlyapikey"},
			{name: "wrong key", docKey: "not-a-key", read: pub, keyKind: ifs(pub, "readonlyapikey")},
			{name: "temporary id", temp: true, read: pub, keyKind: ifs(pub, "readonlyapikey")},
			{name: "other user + temporary id", user: bob, temp: true, read: pub, userOK: true, keyKind: ifs(pub, "readonlyapikey")},
		}
		// publish changes the document, so it runs last, and by the owner after everyone else.
		ordered := append(append([]principal{}, principals[1:]...), principals[0])
		for i, r := range append(append([]route{}, matrixRoutes...), publishRoute) {
			for j, pr := range principals {
				if i == len(matrixRoutes) {
					pr = ordered[j]
				}
				cells++
				got, body := send(t, a, r, pr, owner.DocID, p)
				if want := r.want(pr); got != want {
					wrong++
					t.Errorf("published=%v %s: %s %s: status %d, want %d (%s)", published, pr.name, r.method, r.name, got, want, body)
					continue
				}
				if r.class == "auto" && got == 200 && !strings.Contains(body, `"`+pr.keyKind+`"`) {
					wrong++
					t.Errorf("published=%v %s: getdocapikey answered %s, want %s", published, pr.name, body, pr.keyKind)
				}
			}
		}
	}
	t.Logf("auth matrix: %d routes x 8 principals x {unpublished, published} = %d cells, %d wrong", len(matrixRoutes)+1, cells, wrong)
}

func ifs(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

func send(t *testing.T, a *testAPI, r route, pr principal, docid string, p *apitest.Plot) (int, string) {
	t.Helper()
	path := r.path
	if strings.Contains(path, "%") {
		path = fmt.Sprintf(path, docid, p.Figure.ID, p.Source.ID)
	}
	req, err := http.NewRequest(r.method, a.root+path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if pr.user != nil {
		req.Header.Set("BOKEHUSER", pr.user.Username)
		req.Header.Set("BOKEHUSER-API-KEY", pr.user.UserAPIKey)
	}
	if pr.docKey != "" {
		req.Header.Set("BOKEH-API-KEY", pr.docKey)
	}
	if pr.temp {
		req.Header.Set("temporary-"+docid, "temporary-00112233445566778899AABBCCDDEEFF")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 300)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

// TestSingleUserGrantsEverything: 0.8.x single-user mode passes every document check, even
// with a wrong key (§2.2, §3.6).
func TestSingleUserGrantsEverything(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	for _, pr := range []principal{{name: "anonymous"}, {name: "wrong key", docKey: "nope"}, {name: "temporary id", temp: true}} {
		for _, r := range matrixRoutes {
			if got, body := send(t, a, r, pr, c.DocID, p); got != http.StatusOK {
				t.Errorf("single-user %s %s: %d %s", pr.name, r.name, got, body)
			}
		}
	}
}
