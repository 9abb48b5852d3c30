package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/api/applet/applettest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// Bounds of the applet scenarios; nothing asserts on elapsed time.
const (
	appletWait = 30 * time.Second
	frameWait  = 15 * time.Second
)

// appletScript is a test applet of the host's package (api/applet/testdata).
func appletScript(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "api", "applet", "testdata", name)
}

// startAppletServer runs bokeh-server --script with bokeh 0.8.2 importable.
func startAppletServer(t *testing.T, bk applettest.Bokeh, bin cluster.Binaries, script string, o cluster.ServerOptions) *cluster.Server {
	t.Helper()
	o.Extra = append(o.Extra, "--script", script, "--script-python", bk.Python)
	o.Env = append(o.Env, bk.Env...)
	return cluster.StartServer(t, bin, o)
}

// appletView is one page view of an applet, as BokehJS holds it: the document and object
// the page names, and the temporary id it sends on every request.
type appletView struct {
	root, docid, objid, temp string
	client                   *http.Client
}

var plotServerCall = regexp.MustCompile(`add_plot_server\(Bokeh\.\$\("#PlotPane"\), "([^"]+)", "([^"]+)", true\)`)

// openApplet GETs an applet page and returns the view it starts.
func openApplet(t *testing.T, client *http.Client, root, path string) (*appletView, string) {
	t.Helper()
	if client == nil {
		client = &http.Client{Timeout: appletWait}
	}
	resp, err := client.Get(root + strings.TrimPrefix(path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %.500s", path, resp.StatusCode, body)
	}
	m := plotServerCall.FindSubmatch(body)
	if m == nil {
		t.Fatalf("GET %s: no add_plot_server(..., true) in the page:\n%s", path, body)
	}
	return &appletView{root: root, docid: string(m[1]), objid: string(m[2]), temp: newTemp(), client: client}, string(body)
}

// newTemp is what BokehJS 0.8.2's _.uniqueId('temporary') makes.
func newTemp() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "temporary-" + strings.ToUpper(hex.EncodeToString(b))
}

func (v *appletView) do(t *testing.T, method, rel string, body any, withTemp bool) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, v.root+rel, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	if withTemp {
		req.Header.Set("temporary-"+v.docid, v.temp)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rel, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type wireModel struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Attributes map[string]any `json:"attributes"`
}

// objinfo is what BokehJS loads: the object and everything it references.
func (v *appletView) objinfo(t *testing.T) (string, []wireModel) {
	t.Helper()
	status, b := v.do(t, "GET", "bokeh/objinfo/"+v.docid+"/"+v.objid, nil, true)
	if status != http.StatusOK {
		t.Fatalf("objinfo: %d %.300s", status, b)
	}
	var info struct {
		Type   string      `json:"type"`
		Models []wireModel `json:"all_models"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info.Type, info.Models
}

func findModel(models []wireModel, typ string) wireModel {
	for _, m := range models {
		if m.Type == typ {
			return m
		}
	}
	return wireModel{}
}

// put sends what Backbone's save() sends: every attribute of the model, with id and doc.
func (v *appletView) put(t *testing.T, m wireModel, changes map[string]any) (int, []byte) {
	t.Helper()
	attrs := map[string]any{}
	for k, val := range m.Attributes {
		attrs[k] = val
	}
	for k, val := range changes {
		attrs[k] = val
	}
	return v.do(t, "PUT", "bokeh/bb/"+v.docid+"/"+m.Type+"/"+m.ID+"/", attrs, true)
}

// current is a model as the view sees it now (its overlay applied, or not).
func (v *appletView) current(t *testing.T, m wireModel, withTemp bool) map[string]any {
	t.Helper()
	status, b := v.do(t, "GET", "bokeh/bb/"+v.docid+"/"+m.Type+"/"+m.ID+"/", nil, withTemp)
	if status != http.StatusOK {
		t.Fatalf("GET model: %d %.300s", status, b)
	}
	var attrs map[string]any
	if err := json.Unmarshal(b, &attrs); err != nil {
		t.Fatal(err)
	}
	return attrs
}

// watch subscribes to the view's overlay topic as BokehJS does (auth null).
func (v *appletView) watch(t *testing.T) *cluster.WSClient {
	t.Helper()
	c := cluster.Dial(t, cluster.WSURL(t, v.root), true)
	reply := c.Subscribe(t, "bokehplot:"+v.temp, nil)
	if !strings.Contains(reply, "subscribesuccess") {
		t.Fatalf("subscribe bokehplot:%s: %s", v.temp, reply)
	}
	return c
}

// nextPush returns the models of the next modelpush frame on the view's topic.
func (v *appletView) nextPush(t *testing.T, c *cluster.WSClient) []wireModel {
	t.Helper()
	frame, ok := c.Next(t, frameWait)
	if !ok {
		t.Fatalf("no modelpush within %v (%v)", frameWait, c.Err())
	}
	topic := "bokehplot:" + v.temp + ":"
	if !strings.HasPrefix(frame, topic) {
		t.Fatalf("frame on another topic: %.200s", frame)
	}
	var msg struct {
		MsgType string      `json:"msgtype"`
		Specs   []wireModel `json:"modelspecs"`
	}
	if err := json.Unmarshal([]byte(frame[len(topic):]), &msg); err != nil || msg.MsgType != "modelpush" {
		t.Fatalf("not a modelpush (%v): %.300s", err, frame)
	}
	return msg.Specs
}

// TestAppletServer runs the test applet (api/applet/testdata/testapp.py) in a real
// bokeh-server with its host and a ws-worker, as BokehJS talks to it.
func TestAppletServer(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	s := startAppletServer(t, bk, bin, appletScript("testapp.py"), cluster.ServerOptions{})

	t.Run("Page", func(t *testing.T) {
		v, page := openApplet(t, nil, s.Root, "bokeh/testapp/?start=5")
		for _, want := range []string{
			`<script src="/bokeh/jsgenerate/HBox/TestApp/TestApp"></script>`,
			`window["TestApp"].main();`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if i, j := strings.Index(page, "jsgenerate"), strings.Index(page, "bokehjs/static/js/bokeh.js"); i < 0 || i > j {
			t.Error("the class stub is not loaded before bokeh.js")
		}
		typ, models := v.objinfo(t)
		if typ != "TestApp" || findModel(models, "Slider").Attributes["value"] != 5.0 {
			t.Errorf("objinfo: type %s, models %+v", typ, models)
		}
		// Unlike the original, page views do not pile up in the visitor's document list.
		pc := apitest.NewPyClient(s.Root)
		for _, d := range pc.UserInfo(t).Docs {
			if strings.HasPrefix(d.Title, "testapp") {
				t.Errorf("applet document %v listed for defaultuser", d)
			}
		}
		// Werkzeug's redirect of the path without its slash; a plain Flask view of the
		// script; the stub of a generated class.
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(s.Root + "bokeh/testapp?start=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/bokeh/testapp/?start=1" {
			t.Errorf("GET without the slash: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		status, b := v.do(t, "GET", "bokeh/testapp/hello/you", nil, false)
		if status != http.StatusCreated || string(b) != "hello you from defaultuser" {
			t.Errorf("plain view: %d %q", status, b)
		}
		status, b = v.do(t, "GET", "bokeh/jsgenerate/HBox/SlidersApp/SlidersApp", nil, false)
		if status != http.StatusOK || len(b) != 382 || !strings.HasPrefix(string(b), "window.SlidersApp = {};\nSlidersApp = window.SlidersApp;") {
			t.Errorf("jsgenerate: %d, %d bytes: %s", status, len(b), b)
		}
		if status, _ := v.do(t, "GET", "bokeh/jsgenerate/HBox/alert(1)/X", nil, false); status != http.StatusBadRequest {
			t.Errorf("jsgenerate with a non-identifier: %d, want 400", status)
		}
	})

	t.Run("Update", func(t *testing.T) {
		v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, models := v.objinfo(t)
		slider := findModel(models, "Slider")
		ws := v.watch(t)
		var took []time.Duration
		for i := 20; i < 50; i++ {
			start := time.Now()
			status, b := v.put(t, slider, map[string]any{"value": float64(i), "noop": true})
			if status != http.StatusOK || string(b) != `{"noop": true}` {
				t.Fatalf("PUT %d: %d %s", i, status, b)
			}
			push := v.nextPush(t, ws)
			took = append(took, time.Since(start))
			got := findModel(push, "Slider")
			if len(push) != 1 || got.Attributes["title"] != fmt.Sprintf("value %d", i) || got.Attributes["doc"] != v.docid {
				t.Fatalf("push %d: %+v", i, push)
			}
		}
		logRoundTrips(t, "test applet PUT → modelpush frame", took)
		if got := v.current(t, slider, true); got["title"] != "value 49" {
			t.Errorf("the viewer's copy: %v", got)
		}
		if got := v.current(t, slider, false); got["title"] != "value 0" {
			t.Errorf("the document itself changed: %v", got)
		}
	})

	t.Run("CallbackRaises", func(t *testing.T) {
		v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, models := v.objinfo(t)
		slider := findModel(models, "Slider")
		ws := v.watch(t)
		for _, bad := range []map[string]any{{"value": 13.0}, {"value": "not a number"}, {"bogus": 1}} {
			status, b := v.put(t, slider, bad)
			if status != http.StatusInternalServerError || !strings.Contains(string(b), "nothing was changed") {
				t.Errorf("PUT %v: %d %s, want 500", bad, status, b)
			}
		}
		if got := v.current(t, slider, true); got["value"] != 0.0 || got["title"] != "value 0" {
			t.Errorf("after failed callbacks the viewer's copy is %v", got)
		}
		// Nothing was pushed for them: the next frame is the next good write's.
		if status, b := v.put(t, slider, map[string]any{"value": 14.0}); status != http.StatusOK {
			t.Fatalf("PUT 14: %d %s", status, b)
		}
		if push := v.nextPush(t, ws); findModel(push, "Slider").Attributes["title"] != "value 14" {
			t.Errorf("first push after the failures: %+v", push)
		}
		if log := s.Log(); !strings.Contains(log, "RuntimeError: unlucky 13") || !strings.Contains(log, "[applet-host] Traceback") {
			t.Errorf("the server log lacks the callback's traceback:\n%s", lastLines(log, 30))
		}
	})

	t.Run("BulkUpsertNotPython", func(t *testing.T) {
		// A bulkupsert whose client header is not "python" runs the callbacks too, and
		// answers the modelpush text; the Python client's (no header) does not.
		v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, models := v.objinfo(t)
		slider := findModel(models, "Slider")
		ws := v.watch(t)
		body, _ := json.Marshal([]map[string]any{{"type": "Slider", "id": slider.ID,
			"attributes": map[string]any{"id": slider.ID, "value": 61}}})
		req, _ := http.NewRequest("POST", v.root+"bokeh/bb/"+v.docid+"/bulkupsert", bytes.NewReader(body))
		req.Header.Set("temporary-"+v.docid, v.temp)
		req.Header.Set("client", "javascript")
		resp, err := v.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"title": "value 61"`) {
			t.Errorf("bulkupsert: %d %s", resp.StatusCode, b)
		}
		if push := v.nextPush(t, ws); findModel(push, "Slider").Attributes["title"] != "value 61" {
			t.Errorf("push: %+v", push)
		}
		body, _ = json.Marshal([]map[string]any{{"type": "Slider", "id": slider.ID,
			"attributes": map[string]any{"id": slider.ID, "value": 62}}})
		req, _ = http.NewRequest("POST", v.root+"bokeh/bb/"+v.docid+"/bulkupsert", bytes.NewReader(body))
		req.Header.Set("temporary-"+v.docid, v.temp)
		resp, err = v.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := v.current(t, slider, true); resp.StatusCode != http.StatusOK || got["value"] != 62.0 || got["title"] != "value 61" {
			t.Errorf("the Python client's bulkupsert: %d, %v (its callbacks must not run)", resp.StatusCode, got)
		}
	})

	t.Run("OneAtATimePerPage", func(t *testing.T) {
		v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, models := v.objinfo(t)
		slider := findModel(models, "Slider")
		const n = 12
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := 1; i <= n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A partial body, as PATCH sends: each callback appends to the tags it
				// finds, so a write that did not see the one before it loses a value.
				status, b := v.do(t, "PATCH", "bokeh/bb/"+v.docid+"/Slider/"+slider.ID+"/", map[string]any{"value": 100 + i}, true)
				if status != http.StatusOK {
					errs <- fmt.Sprintf("PATCH %d: %d %s", i, status, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		tags, _ := v.current(t, slider, true)["tags"].([]any)
		var got []int
		for _, tag := range tags {
			got = append(got, int(tag.(float64)))
		}
		sort.Ints(got)
		want := make([]int, n)
		for i := range want {
			want[i] = 101 + i
		}
		if !slices.Equal(got, want) {
			t.Errorf("tags after %d concurrent writes: %v, want each value once: %v", n, got, want)
		}
	})

	t.Run("SlowCallbackStallsNoOtherPage", func(t *testing.T) {
		slow, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		fast, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, slowModels := slow.objinfo(t)
		_, fastModels := fast.objinfo(t)
		slowDone := make(chan int, 1)
		go func() {
			status, _ := slow.put(t, findModel(slowModels, "Slider"), map[string]any{"value": 99.0})
			slowDone <- status
		}()
		deadline := time.Now().Add(appletWait)
		for {
			if _, b := fast.do(t, "GET", "bokeh/testapp/waiting", nil, false); string(b) == "1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the slow callback never started")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if status, b := fast.put(t, findModel(fastModels, "Slider"), map[string]any{"value": 7.0}); status != http.StatusOK {
			t.Fatalf("another page's write beside the slow callback: %d %s", status, b)
		}
		select {
		case status := <-slowDone:
			t.Fatalf("the slow callback returned %d before it was released", status)
		default:
		}
		if status, b := fast.do(t, "POST", "bokeh/testapp/release", nil, false); status != http.StatusOK {
			t.Fatalf("release: %d %s", status, b)
		}
		if status := <-slowDone; status != http.StatusOK {
			t.Errorf("the slow callback answered %d", status)
		}
	})

	t.Run("OtherDocumentsNative", func(t *testing.T) {
		pc := apitest.NewPyClient(s.Root)
		plot := storePlot(t, pc, "not-an-applet")
		body, _ := json.Marshal(map[string]any{"title": "renamed"})
		if r := pc.Do(t, "PUT", "bokeh/bb/"+pc.DocID+"/Plot/"+plot.Figure.ID+"/", body, true); r.Status != http.StatusOK {
			t.Fatalf("PUT on a plain document: %d %s", r.Status, r.Body)
		}
		r := pc.Do(t, "GET", "bokeh/bb/"+pc.DocID+"/Plot/"+plot.Figure.ID+"/", nil, true)
		if !strings.Contains(string(r.Body), `"title": "renamed"`) {
			t.Errorf("plain document after PUT: %s", r.Body)
		}
	})

	t.Run("HostRestart", func(t *testing.T) {
		v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
		_, models := v.objinfo(t)
		slider := findModel(models, "Slider")
		patch := func(value float64) (int, []byte) {
			return v.do(t, "PATCH", "bokeh/bb/"+v.docid+"/Slider/"+slider.ID+"/", map[string]any{"value": value}, true)
		}
		if status, _ := patch(3); status != http.StatusOK {
			t.Fatalf("PATCH before the crash: %d", status)
		}
		host := hostPid(t, s)
		if err := syscall.Kill(host, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Meanwhile writes answer 503 and change nothing; then the new host serves the
		// same page, whose state lives in the server's storage.
		deadline := time.Now().Add(appletWait)
		for {
			status, b := patch(4)
			if status == http.StatusOK {
				break
			}
			if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("PATCH while the host restarts: %d %s", status, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if tags := v.current(t, slider, true)["tags"]; fmt.Sprint(tags) != "[3 4]" {
			t.Errorf("tags after the restart: %v, want [3 4]", tags)
		}
		if hostPid(t, s) == host {
			t.Error("the host's pid did not change")
		}
		if !strings.Contains(s.Log(), "applet host exited; restarting") {
			t.Error("the log does not say the host was restarted")
		}
	})
}

// hostPid is the pid of the server's running applet host.
func hostPid(t *testing.T, s *cluster.Server) int {
	t.Helper()
	for _, pid := range cluster.ChildPids(s.Pid()) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmd, []byte("bokeh_applet_host.py")) {
			return pid
		}
	}
	t.Fatalf("no applet host among the children of bokeh-server (%d)", s.Pid())
	return 0
}

// logRoundTrips logs the spread of measured round trips (figures for the README, never
// asserted).
func logRoundTrips(t *testing.T, what string, took []time.Duration) {
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	q := func(p float64) time.Duration {
		return sorted[int(p*float64(len(sorted)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("%s, %d round trips: min %v, median %v, p90 %v, max %v", what, len(sorted), sorted[0], q(0.5), q(0.9), sorted[len(sorted)-1].Round(10*time.Microsecond))
}

// TestAppletHostDiesWithServer: a bokeh-server killed with SIGKILL takes its host along.
func TestAppletHostDiesWithServer(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	s := startAppletServer(t, bk, bin, appletScript("testapp.py"), cluster.ServerOptions{})
	host := hostPid(t, s)
	s.Kill(t)
	deadline := time.Now().Add(appletWait)
	for cluster.Alive(host) {
		if time.Now().After(deadline) {
			t.Fatalf("the applet host (pid %d) outlived its server", host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAppletMultiUser: in -m mode an anonymous visitor can use an applet, through the
// page's temporary copy only, and touch nothing else.
func TestAppletMultiUser(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	s := startAppletServer(t, bk, bin, appletScript("testapp.py"), cluster.ServerOptions{MultiUser: true})
	v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
	_, models := v.objinfo(t)
	slider := findModel(models, "Slider")
	ws := v.watch(t)
	if status, b := v.put(t, slider, map[string]any{"value": 8.0}); status != http.StatusOK {
		t.Fatalf("anonymous PUT with the page's temporary id: %d %s", status, b)
	}
	if push := v.nextPush(t, ws); findModel(push, "Slider").Attributes["title"] != "value 8" {
		t.Errorf("push: %+v", push)
	}
	if status, _ := v.do(t, "PUT", "bokeh/bb/"+v.docid+"/Slider/"+slider.ID+"/", map[string]any{"value": 9}, false); status != http.StatusUnauthorized {
		t.Errorf("anonymous PUT to the document itself: %d, want 401", status)
	}
	status, b := v.do(t, "GET", "bokeh/getdocapikey/"+v.docid, nil, false)
	if status != http.StatusOK || !strings.Contains(string(b), "readonlyapikey") || strings.Contains(string(b), `"apikey"`) {
		t.Errorf("anonymous getdocapikey: %d %s, want the read-only key only", status, b)
	}
	if status, _ := v.do(t, "POST", "bokeh/doc/", map[string]any{"title": "mine"}, false); status != http.StatusUnauthorized {
		t.Errorf("anonymous document creation: %d, want 401", status)
	}
	if got := v.current(t, slider, false); got["title"] != "value 0" {
		t.Errorf("the document itself changed: %v", got)
	}
}

// TestAppletExpiry: an applet page's document is deleted once unused for the TTL.
func TestAppletExpiry(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	s := startAppletServer(t, bk, bin, appletScript("testapp.py"), cluster.ServerOptions{
		Extra: []string{"--overlay-ttl", "2s"}})
	v, _ := openApplet(t, nil, s.Root, "bokeh/testapp/")
	_, models := v.objinfo(t)
	if status, _ := v.put(t, findModel(models, "Slider"), map[string]any{"value": 1.0}); status != http.StatusOK {
		t.Fatalf("PUT: %d", status)
	}
	deadline := time.Now().Add(appletWait)
	for {
		status, _ := v.do(t, "GET", "bokeh/objinfo/"+v.docid+"/"+v.objid, nil, true)
		if status == http.StatusNotFound {
			break
		}
		if status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("objinfo of an unused applet document: %d after %v", status, appletWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(s.Log(), "deleted expired applet documents") {
		t.Error("the log does not say the document was deleted")
	}
}

// TestAppletStartErrors: bokeh-server refuses to start when the host cannot, saying why.
func TestAppletStartErrors(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	for _, c := range []struct {
		name   string
		args   []string
		inLogs []string
	}{
		{"script raises", []string{"--script", appletScript("raises.py"), "--script-python", bk.Python},
			[]string{"raised while it was imported: ValueError: this script is broken on purpose", "fix the script", "[applet-host] Traceback"}},
		{"no interpreter", []string{"--script", appletScript("testapp.py"), "--script-python", "/nonexistent/python3"},
			[]string{`Python interpreter \"/nonexistent/python3\" not found`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--ip", "127.0.0.1", "--port", fmt.Sprint(cluster.FreePort(t)), "--backend", "memory",
				"--no-ws-start", "--zmqaddr", cluster.ZMQAddr(t)}, c.args...)
			p := cluster.StartProc(t, "bokeh-server "+c.name, bin.Server, args, bk.Env)
			exited, exitErr := p.Exited()
			select {
			case <-exited:
			case <-time.After(appletWait):
				t.Fatal("bokeh-server kept running")
			}
			if exitErr() == nil {
				t.Error("bokeh-server exited with status 0")
			}
			for _, want := range c.inLogs {
				if !strings.Contains(p.Log(), want) {
					t.Errorf("log lacks %s:\n%s", want, lastLines(p.Log(), 20))
				}
			}
		})
	}
}
