package api_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/api/workerapi"
	"github.com/bokeh-go/bokeh-server/storage"
)

func do(t *testing.T, method, url string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestCORSGrantsOnlyAllowedOrigins: preflights echo the requested headers (BokehJS's
// temporary-<docid> header cannot be listed in advance); a page of another site is granted
// what is public (wsurl, a published document), an allowed origin everything.
func TestCORSGrantsOnlyAllowedOrigins(t *testing.T) {
	const other = "http://elsewhere.example"
	for _, allowed := range []bool{false, true} {
		cfg := api.Config{}
		if allowed {
			cfg.AllowedOrigins = []string{other}
		}
		a := newTestAPI(t, cfg)
		c := apitest.NewPyClient(a.root)
		c.UseDoc(t, "cors")
		asked := "continuum-clientid, temporary-" + c.DocID
		preflight := func(path string) *http.Response {
			return do(t, "OPTIONS", a.root+path, map[string]string{
				"Origin": other, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": asked})
		}
		private := []string{"bokeh/objinfo/" + c.DocID + "/x", "bokeh/bb/" + c.DocID + "/Plot/p/", "bokeh/userinfo/"}
		check := func(path, want string) {
			t.Helper()
			resp := preflight(path)
			got := resp.Header.Get("Access-Control-Allow-Origin")
			if resp.StatusCode != 200 || got != want {
				t.Errorf("allowed=%v: OPTIONS %s: %d, allow-origin %q, want %q", allowed, path, resp.StatusCode, got, want)
			}
			if want != "" && (resp.Header.Get("Access-Control-Allow-Headers") != asked ||
				resp.Header.Get("Access-Control-Max-Age") != "21600" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET")) {
				t.Errorf("allowed=%v: OPTIONS %s: headers %v", allowed, path, resp.Header)
			}
		}
		check("bokeh/wsurl/", map[bool]string{false: "*", true: other}[allowed])
		for _, path := range private {
			check(path, map[bool]string{false: "", true: other}[allowed])
		}
		if r := c.Publish(t); r.Status != http.StatusOK {
			t.Fatal(r.Status)
		}
		for _, path := range private[:2] { // a published document is readable by any embedder
			check(path, map[bool]string{false: "*", true: other}[allowed])
		}
		check(private[2], map[bool]string{false: "", true: other}[allowed])
		resp := do(t, "GET", a.root+"bokeh/bokehinfo/"+c.DocID+"/", map[string]string{"Origin": other})
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") == "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("allowed=%v: bokehinfo of a published doc from another site: %d %v", allowed, resp.StatusCode, resp.Header)
		}
	}
}

func TestWSURL(t *testing.T) {
	local, _ := api.ParseCIDRs("127.0.0.1")
	a := newTestAPI(t, api.Config{Workers: &api.StaticWorkers{Ports: []int{6001, 6002}}, URLPrefix: "p",
		AllowedHosts: []string{"plots.example.org"}, TrustedProxies: local})
	get := func(host string, hdr map[string]string) (string, *apitest.Response) {
		req, _ := http.NewRequest("GET", a.root+"bokeh/wsurl/", nil)
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return b.String(), &apitest.Response{Status: resp.StatusCode, Header: resp.Header}
	}
	first, r := get("plots.example.org:5006", nil)
	second, _ := get("plots.example.org:5006", nil)
	if first != "ws://plots.example.org:6001/p/bokeh/sub/" && first != "ws://plots.example.org:6002/p/bokeh/sub/" {
		t.Errorf("wsurl %q", first)
	}
	if first == second {
		t.Errorf("wsurl did not spread pages over workers: %q twice", first)
	}
	if ct := r.Header.Get("Content-Type"); strings.Contains(ct, "json") {
		t.Errorf("wsurl content type %q must not be JSON", ct)
	}
	if u, _ := get("plots.example.org", map[string]string{"X-Forwarded-Proto": "https"}); !strings.HasPrefix(u, "wss://plots.example.org:600") {
		t.Errorf("behind TLS: %q", u)
	}
	if u, _ := get("[::1]:5006", nil); !strings.HasPrefix(u, "ws://[::1]:600") {
		t.Errorf("IPv6 host: %q", u)
	}
	// X-Forwarded-Proto from a peer that is not a trusted proxy is not believed.
	direct := newTestAPI(t, api.Config{AllowedHosts: []string{"plots.example.org"}})
	req, _ := http.NewRequest("GET", direct.root+"bokeh/wsurl/", nil)
	req.Host = "plots.example.org"
	req.Header.Set("X-Forwarded-Proto", "https")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); !strings.HasPrefix(string(b), "ws://plots.example.org:5007") {
		resp.Body.Close()
		t.Errorf("X-Forwarded-Proto from an untrusted peer changed the scheme: %q", b)
	} else {
		resp.Body.Close()
	}

	fixed := newTestAPI(t, api.Config{WSConnString: "wss://lb.example.org/bokeh/sub/"})
	if r := apitest.Get(t, fixed.root+"bokeh/wsurl/", nil); string(r.Body) != "wss://lb.example.org/bokeh/sub/" {
		t.Errorf("ws-conn-string not verbatim: %q", r.Body)
	}
	relative := newTestAPI(t, api.Config{WSConnString: "/bokeh/sub/", AllowedHosts: []string{"*.example.org"}})
	if u, _ := get("plots.example.org:8080", map[string]string{"X-Forwarded-Proto": "https"}); u == "" {
		t.Fatal("no answer")
	}
	req, _ = http.NewRequest("GET", relative.root+"bokeh/wsurl/", nil)
	req.Host = "plots.example.org:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ws://plots.example.org:8080/bokeh/sub/" {
		t.Errorf("relative ws-conn-string: %q", b)
	}
	none := newTestAPI(t, api.Config{Workers: &api.StaticWorkers{}})
	resp, err = http.Get(none.root + "bokeh/wsurl/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Pages (live.js) wait the hint out instead of all retrying at once.
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("no live worker: %d, Retry-After %q; want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestPagesEscapeUserText(t *testing.T) {
	a := newTestAPI(t, api.Config{BokehJSDir: t.TempDir()})
	c := apitest.NewPyClient(a.root)
	title := `</script><script>alert("x")</script>`
	c.UseDoc(t, title)
	r := c.Do(t, "GET", "bokeh/doc/"+strings.ReplaceAll(title, "/", "%2F")+"/show", nil, false)
	if r.Status == http.StatusOK && strings.Contains(string(r.Body), `<script>alert("x")`) {
		t.Fatalf("title not escaped in the show page")
	}
	idx := apitest.Get(t, a.root+"bokeh/", nil)
	if idx.Status != 200 || !strings.Contains(string(idx.Body), "Bokeh.embed.server_page()") {
		t.Fatalf("index: %d %.300s", idx.Status, idx.Body)
	}
	if !strings.Contains(string(idx.Body), "make setup") {
		t.Errorf("a missing BokehJS build is not explained on the page")
	}
	ctx, _ := c.LoadDocument(t)
	obj := apitest.Get(t, a.root+"bokeh/doc/"+c.DocID+"/"+ctx.ID+"?public=TRUE", nil)
	call := regexp.MustCompile(`Bokeh\.embed\.add_plot_server\(Bokeh\.\$\("#PlotPane"\), "` + c.DocID + `", "` + ctx.ID + `",\s*true\s*\)`)
	if !call.Match(obj.Body) {
		t.Errorf("object page script: %.1500s", obj.Body)
	}
	if r := apitest.Get(t, a.root+"bokeh/doc/no-such-doc/x", nil); r.Status != http.StatusNotFound {
		t.Errorf("object page of an unknown doc: %d, want 404", r.Status)
	}
}

func TestAutoloadJS(t *testing.T) {
	a := newTestAPI(t, api.Config{URLPrefix: "/pre"})
	r := apitest.Get(t, a.root+"bokeh/autoload.js/0b5a-elt", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/javascript" {
		t.Fatalf("autoload.js: %d %v", r.Status, r.Header)
	}
	body := string(r.Body)
	for _, want := range []string{`"0b5a-elt"`, a.http.URL + `/pre/bokehjs/static/js/bokeh.min.js`, `/pre/bokehjs/static/css/bokeh.min.css`, "inject_plot", "inject_css"} {
		if !strings.Contains(body, want) {
			t.Errorf("autoload.js lacks %s", want)
		}
	}
	if r := apitest.Get(t, a.root+"bokeh/autoload.js/a%22%3Balert(1)", nil); r.Status != http.StatusBadRequest {
		t.Errorf("hostile element id: %d, want 400", r.Status)
	}
}

func TestStaticFilesRefuseTraversal(t *testing.T) {
	dir := t.TempDir()
	a := newTestAPI(t, api.Config{StaticDir: dir, BokehJSDir: dir})
	for _, p := range []string{"/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/pre/bokehjs/static/..%2f..%2fetc/passwd"} {
		if r := apitest.Get(t, a.http.URL+p, nil); r.Status == 200 {
			t.Errorf("%s served: %.100s", p, r.Body)
		}
	}
	if r := apitest.Get(t, a.root+"bokeh/static/live.js", nil); r.Status != 200 {
		t.Errorf("embedded live.js: %d", r.Status)
	}
	if r := apitest.Get(t, a.root+"bokeh/favicon.ico", nil); r.Status != 200 || r.Header.Get("Content-Type") != "image/x-icon" {
		t.Errorf("favicon: %d %v", r.Status, r.Header)
	}
}

func TestInternalDocKeys(t *testing.T) {
	a := newTestAPI(t, api.Config{SecretKey: "s3cret"})
	c := apitest.NewPyClient(a.root)
	c.UseDoc(t, "keys")
	url := a.root + workerapi.DocKeysPath + c.DocID
	if r := apitest.Get(t, url, map[string]string{workerapi.InternalTokenHeader: workerapi.InternalToken("wrong")}); r.Status != http.StatusUnauthorized {
		t.Errorf("bad token: %d", r.Status)
	}
	good := map[string]string{workerapi.InternalTokenHeader: workerapi.InternalToken("s3cret")}
	var keys workerapi.DocKeys
	r := apitest.Get(t, url, good)
	r.JSON(t, &keys)
	if keys.APIKey != c.APIKey || keys.ReadOnlyAPIKey == "" {
		t.Errorf("keys %+v, want apikey %s", keys, c.APIKey)
	}
	if r := apitest.Get(t, a.root+workerapi.DocKeysPath+"nope", good); r.Status != http.StatusNotFound {
		t.Errorf("unknown doc: %d", r.Status)
	}
}

func TestLegacyRecords(t *testing.T) {
	store := storage.NewMemory(0)
	ctx := context.Background()
	// sha1$abcdefgh$... is werkzeug's hash of "secret" with salt abcdefgh (HMAC-SHA1).
	legacy := storage.User{Username: "old", PassHash: "sha1$abcdefgh$e8b8850c11636711d5d72401f901f1a17d717336",
		Docs: []storage.DocEntry{{DocID: "d-old"}}}
	if err := store.PutUser(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := store.PutDoc(ctx, storage.Doc{DocID: "d-old", Title: "from 0.7", APIKey: "k", RWUsers: []string{"old"},
		PlotContextRef: storage.Ref{Type: "PlotContext", ID: "pc"}}); err != nil {
		t.Fatal(err)
	}
	a := newTestAPIWithStore(t, api.Config{MultiUser: true}, store)
	c := apitest.NewPyClient(a.root)
	if out := c.Login(t, "old", "secret"); out["status"] != true {
		t.Fatalf("legacy sha1 login: %v", out)
	}
	u, _ := store.User(ctx, "old")
	if !strings.HasPrefix(u.PassHash, "$2") || u.APIKey == "" {
		t.Errorf("legacy hash not upgraded to bcrypt or apikey not added: %+v", u)
	}
	if len(u.Docs) != 1 || u.Docs[0].Title != "from 0.7" {
		t.Errorf("bare docid entry not migrated: %+v", u.Docs)
	}
	if out := apitest.NewPyClient(a.root).Login(t, "old", "secret"); out["status"] != true {
		t.Fatalf("login after upgrade: %v", out)
	}
	d, _ := store.Doc(ctx, "d-old")
	c.UseDoc(t, "from 0.7")
	if d2, _ := store.Doc(ctx, "d-old"); d2.ReadOnlyAPIKey == "" || d.Title != "from 0.7" {
		t.Errorf("readonlyapikey not added to an old doc record: %+v", d2)
	}
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	for i := 0; i < 3; i++ {
		c.Push(t, apitest.SourceUpdate(c.DocID, p.Source, 10, float64(i)))
	}
	c.Push(t, []byte("not json"))
	body := string(apitest.Get(t, a.http.URL+"/metrics", nil).Body)
	for _, want := range []string{
		`bokeh_http_requests_total{code="200",method="POST",route="/bokeh/bb/:docid/bulkupsert"} 4`,
		`bokeh_http_requests_total{code="400",method="POST",route="/bokeh/bb/:docid/bulkupsert"} 1`,
		`bokeh_http_request_duration_seconds_count{method="POST",route="/bokeh/bb/:docid/bulkupsert"} 5`,
		"bokeh_published_messages_total 5", // make_doc's docchange and four modelpushes
		"bokeh_storage_up 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}
