package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/api/applet/applettest"
	"github.com/bokeh-go/bokeh-server/broker/brokertest"
	"github.com/bokeh-go/bokeh-server/storage"
)

// jsgenerate needs no script: BokehJS pages of applets embedded elsewhere load it too.
func TestJSGenerate(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	resp, err := http.Get(a.root + "bokeh/jsgenerate/VBox/MyApp/MyAppClass")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "window.MyApp = {};\nMyApp = window.MyApp;\nMyApp.main = function(){\n  MyAppClassView  = Bokeh.VBox.View.extend({\n  });\n" +
		"  MyAppClass = Bokeh.VBox.Model.extend({\n    type : \"MyAppClass\",\n    default_view : MyAppClassView\n  });\n" +
		"  MyAppClasss = Backbone.Collection.extend({\n    model : MyAppClass\n  });\n  Bokeh.Collections.register(\"MyAppClass\", new MyAppClasss ());\n}"
	if resp.StatusCode != http.StatusOK || string(b) != want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
		t.Errorf("jsgenerate: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	for _, bad := range []string{"HBox/a-b/C", "HBox/A/x;alert(1)", "1x/A/B"} {
		resp, err := http.Get(a.root + "bokeh/jsgenerate/" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("jsgenerate/%s: %d, want 400", bad, resp.StatusCode)
		}
	}
}

// appletAPI is the API in process with a real applet host of a test script.
type appletAPI struct {
	srv  *api.Server
	root string
	rec  *brokertest.Recorder
}

func startAppletHost(t *testing.T, script string) *applet.Host {
	t.Helper()
	bk := applettest.Find(t)
	path, _ := filepath.Abs(filepath.Join("applet", "testdata", script))
	h, err := applet.Start(context.Background(), applet.Options{Script: path, Python: bk.Python, Env: bk.Env,
		Output: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func newAppletAPI(t *testing.T, cfg api.Config, script string) *appletAPI {
	t.Helper()
	cfg.Applets = startAppletHost(t, script)
	cfg.SecretKey = "test-secret"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Workers = &api.StaticWorkers{Ports: []int{5007}}
	rec := &brokertest.Recorder{}
	srv, err := api.New(cfg, storage.NewMemory(time.Hour), rec)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &appletAPI{srv: srv, root: hs.URL + cfg.URLPrefix + "/", rec: rec}
}

func TestAppletRouteCollision(t *testing.T) {
	_, err := api.New(api.Config{SecretKey: "k", Applets: startAppletHost(t, "collides.py")}, storage.NewMemory(time.Hour), &brokertest.Recorder{})
	if err == nil || !strings.Contains(err.Error(), "applet route GET /bokeh/doc/<docid>/ would replace this server's route") {
		t.Errorf("New: %v", err)
	}
}

var docAndObject = regexp.MustCompile(`add_plot_server\(Bokeh\.\$\("#PlotPane"\), "([^"]+)", "([^"]+)", true\)`)

func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Under a URL prefix: the page, its stubs and its writes all live under it; the push goes
// to the page's temporary topic.
func TestAppletURLPrefix(t *testing.T) {
	a := newAppletAPI(t, api.Config{URLPrefix: "/plots"}, "testapp.py")
	status, page := get(t, a.root+"bokeh/testapp/", nil)
	m := docAndObject.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil || !strings.Contains(page, `src="/plots/bokeh/jsgenerate/HBox/TestApp/TestApp"`) {
		t.Fatalf("page: %d\n%s", status, page)
	}
	docid, objid := m[1], m[2]
	tmp := http.Header{"Temporary-" + docid: {"temporary-00FF00FF00FF00FF00FF00FF00FF00FF"}}
	_, info := get(t, a.root+"bokeh/objinfo/"+docid+"/"+objid, tmp)
	var oi struct {
		Models []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"all_models"`
	}
	if err := json.Unmarshal([]byte(info), &oi); err != nil {
		t.Fatal(err)
	}
	var slider string
	for _, mo := range oi.Models {
		if mo.Type == "Slider" {
			slider = mo.ID
		}
	}
	req, _ := http.NewRequest("PUT", a.root+"bokeh/bb/"+docid+"/Slider/"+slider+"/", strings.NewReader(`{"value": 21, "noop": true, "doc": "`+docid+`"}`))
	req.Header = tmp.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"noop": true}` {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	msgs := a.rec.Messages()
	if len(msgs) != 1 || msgs[0].Topic != "bokehplot:temporary-00FF00FF00FF00FF00FF00FF00FF00FF" || !strings.Contains(string(msgs[0].Payload), `"title": "value 21"`) {
		t.Errorf("published: %+v", msgs)
	}
}

// The sweep deletes an applet document once it has not been used for the TTL.
func TestAppletDocumentExpires(t *testing.T) {
	a := newAppletAPI(t, api.Config{AppletTTL: time.Hour}, "testapp.py")
	_, page := get(t, a.root+"bokeh/testapp/", nil)
	m := docAndObject.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page:\n%s", page)
	}
	objinfo := a.root + "bokeh/objinfo/" + m[1] + "/" + m[2]
	if n, err := a.srv.SweepExpiredDocs(context.Background(), time.Now().Add(59*time.Minute)); err != nil || n != 0 {
		t.Errorf("sweep before the TTL: %d, %v", n, err)
	}
	if status, _ := get(t, objinfo, nil); status != http.StatusOK {
		t.Fatalf("objinfo before expiry: %d", status)
	}
	if n, err := a.srv.SweepExpiredDocs(context.Background(), time.Now().Add(61*time.Minute)); err != nil || n != 1 {
		t.Errorf("sweep after the TTL: %d, %v", n, err)
	}
	if status, _ := get(t, objinfo, nil); status != http.StatusNotFound {
		t.Errorf("objinfo after expiry: %d, want 404", status)
	}
}
