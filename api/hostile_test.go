package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/broker/brokertest"
	"github.com/bokeh-go/bokeh-server/storage"
)

func TestMarkupInNamesIsEscaped(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	evil := `<img src=x onerror=alert(1)>`
	c := apitest.NewPyClient(a.root)
	if out := c.Register(t, evil, "pw"); out["status"] != true {
		t.Fatalf("register: %v", out)
	}
	c.UseDoc(t, evil+"</script>")
	pages := []string{"bokeh/", "bokeh/doc/" + strings.ReplaceAll(evil+"</script>", "/", "%2F") + "/show"}
	for _, page := range pages {
		r := c.Do(t, "GET", page, nil, false)
		if strings.Contains(string(r.Body), "<img src=x") || strings.Contains(string(r.Body), "alert(1)></script>") {
			t.Errorf("%s renders markup from a name unescaped:\n%s", page, r.Body)
		}
	}
}

func TestDeepNestingRefused(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c := apitest.NewPyClient(a.root)
	c.UseDoc(t, "deep")
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	body := `[{"type": "Range1d", "attributes": {"id": "d", "x": ` + deep + `}}]`
	if r := c.Push(t, []byte(body)); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "nesting") {
		t.Fatalf("deeply nested body: %d %s", r.Status, r.Body)
	}
}

// FuzzRequestHeaders sends arbitrary identity, key, temporary-id and cookie headers: the
// server must answer with a client error or success, never a 500.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("alice", "key", "doc-key", "temporary-ABC", "session=x.y.z", uint8(0))
	f.Add("", "nokey", "", "temporary-", "session=", uint8(3))
	f.Add("a:b", "\x00", "\xff", "../../etc", "bokeh_csrf=1", uint8(7))
	store := storage.NewMemory(time.Hour)
	srv, err := api.New(api.Config{MultiUser: true, SecretKey: "fuzz", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Workers: &api.StaticWorkers{Ports: []int{1}}}, store, &brokertest.Recorder{})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	owner := httptest.NewServer(h)
	defer owner.Close()
	c := apitest.NewPyClient(owner.URL)
	c.Register(f, "owner", "pw")
	c.UseDoc(f, "fuzzed")
	ctx, _ := c.LoadDocument(f)
	docid := c.DocID
	paths := []string{"/bokeh/bb/" + docid + "/", "/bokeh/objinfo/" + docid + "/" + ctx.ID, "/bokeh/userinfo/",
		"/bokeh/getdocapikey/" + docid, "/bokeh/bb/" + docid + "/PlotContext/" + ctx.ID + "/", "/bokeh/doc/" + docid + "/" + ctx.ID,
		"/bokeh/bb/" + docid + "/bulkupsert", "/bokeh/bb/" + docid + "/gc"}
	f.Fuzz(func(t *testing.T, user, userKey, docKey, temp, cookie string, which uint8) {
		path := paths[int(which)%len(paths)]
		method := http.MethodGet
		body := ""
		if strings.HasSuffix(path, "bulkupsert") || strings.HasSuffix(path, "/gc") {
			method, body = http.MethodPost, `[]`
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Host = "127.0.0.1" // not httptest's example.com, which the Host check refuses
		for k, v := range map[string]string{"BOKEHUSER": user, "BOKEHUSER-API-KEY": userKey, "BOKEH-API-KEY": docKey,
			"temporary-" + docid: temp, "Cookie": cookie} {
			req.Header[http.CanonicalHeaderKey(k)] = []string{v}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with user %q key %q doc key %q temp %q cookie %q: %d %s", method, path, user, userKey, docKey, temp, cookie, w.Code, w.Body)
		}
	})
}

// FuzzTemporaryID checks that no temporary id reaches storage as another document's scope:
// a write with an arbitrary id either is refused or lands in the viewer's own overlay.
func FuzzTemporaryID(f *testing.F) {
	for _, s := range []string{"temporary-0A", "temporary-", "temporary-zz", "", "other-doc", "temporary-0A:x", "temporary-" + strings.Repeat("F", 64)} {
		f.Add(s)
	}
	store := storage.NewMemory(time.Hour)
	srv, err := api.New(api.Config{SecretKey: "fuzz", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store, &brokertest.Recorder{})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	hs := httptest.NewServer(h)
	defer hs.Close()
	a := apitest.NewPyClient(hs.URL)
	a.UseDoc(f, "victim")
	victim := a.DocID
	b := apitest.NewPyClient(hs.URL)
	b.UseDoc(f, "attacker")
	attacker := b.DocID
	f.Fuzz(func(t *testing.T, temp string) {
		req := httptest.NewRequest(http.MethodPost, "/bokeh/bb/"+attacker+"/bulkupsert",
			strings.NewReader(`[{"type": "PlotContext", "attributes": {"id": "injected"}}]`))
		req.Host = "127.0.0.1"
		req.Header["Temporary-"+attacker] = []string{temp}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("temporary id %q: %d %s", temp, w.Code, w.Body)
		}
		models, err := store.Models(t.Context(), storage.Scope{DocID: victim})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range models {
			if m.ID == "injected" {
				t.Fatalf("temporary id %q wrote into another document", temp)
			}
		}
	})
}
