package applet_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/api/applet"
	"github.com/bokeh-go/bokeh-server/api/applet/applettest"
)

// Bounds of waits in these tests; nothing asserts on elapsed time.
const (
	testWait   = 60 * time.Second
	pollPeriod = 50 * time.Millisecond
)

// syncBuffer collects the host's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startHost(t *testing.T, bk applettest.Bokeh, script string, edit func(*applet.Options)) (*applet.Host, *syncBuffer) {
	t.Helper()
	out := newSyncBuffer()
	o := applet.Options{Script: script, Python: bk.Python, Env: bk.Env, Output: out}
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	h, err := applet.Start(ctx, o)
	if err != nil {
		t.Fatalf("start host: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close host: %v", err)
		}
		if t.Failed() {
			t.Logf("host output:\n%s", out.String())
		}
	})
	return h, out
}

func testScript(name string) string {
	p, _ := filepath.Abs(filepath.Join("testdata", name))
	return p
}

type model struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Attributes map[string]any `json:"attributes"`
}

// buildPage asks for the page as bokeh-server does and returns the built models.
func buildPage(t *testing.T, h *applet.Host, path, query string) (applet.RouteResult, string, []model) {
	t.Helper()
	docid, pcid := uuid.NewString(), uuid.NewString()
	pc, _ := json.Marshal([]model{{Type: "PlotContext", ID: pcid, Attributes: map[string]any{
		"children": []any{}, "tags": []any{}, "id": pcid, "doc": docid}}})
	user := "defaultuser"
	r, err := h.Route(context.Background(), applet.RouteCall{
		Request:  applet.Request{Method: "GET", Path: path, Query: query, BaseURL: "http://127.0.0.1:5006", User: &user},
		Endpoint: "", DocID: docid, PlotContext: pc,
	})
	if err != nil {
		t.Fatalf("route %s: %v", path, err)
	}
	var models []model
	if r.Kind == "object" {
		if err := json.Unmarshal(r.Models, &models); err != nil {
			t.Fatalf("page models: %v", err)
		}
	}
	return r, docid, models
}

func find(models []model, typ string) model {
	for _, m := range models {
		if m.Type == typ {
			return m
		}
	}
	return model{}
}

// update sends a slider change to the host.
func update(ctx context.Context, h *applet.Host, docid string, models []model, slider model, value any) ([]model, error) {
	change := map[string]any{}
	for k, v := range slider.Attributes {
		if k != "doc" {
			change[k] = v
		}
	}
	change["value"] = value
	payload, _ := json.Marshal(map[string]any{"models": models,
		"changes": []map[string]any{{"type": "Slider", "attributes": change}}})
	out, err := h.Update(ctx, applet.UpdateCall{DocID: docid, Payload: payload,
		Request: applet.Request{Method: "PUT", Path: "/bokeh/bb/" + docid + "/Slider/" + slider.ID + "/"}})
	if err != nil {
		return nil, err
	}
	var changed []model
	if err := json.Unmarshal(out, &changed); err != nil {
		return nil, err
	}
	return changed, nil
}

func types(models []model) []string {
	var out []string
	for _, m := range models {
		out = append(out, m.Type)
	}
	slices.Sort(out)
	return out
}

// The real sliders applet of bokeh 0.8.2: its route, its page and one slider move.
func TestSlidersApplet(t *testing.T) {
	bk := applettest.Find(t)
	h, _ := startHost(t, bk, bk.Example("examples/app/sliders_applet/sliders_app.py"), nil)
	info := h.Info()
	if len(info.Routes) != 1 || info.Routes[0].Rule != "/bokeh/sliders/" || info.Routes[0].ObjectPage == nil || *info.Routes[0].ObjectPage != "sin" {
		t.Fatalf("routes: %+v", info.Routes)
	}
	if !slices.Contains(info.CallbackTypes, "SlidersApp") || !slices.Contains(info.CallbackTypes, "CrossFilter") {
		t.Errorf("callback types: %v", info.CallbackTypes)
	}
	if want := [][3]string{{"SlidersApp", "SlidersApp", "HBox"}}; !slices.Equal(info.GeneratedClasses, want) {
		t.Errorf("generated classes %v, want %v", info.GeneratedClasses, want)
	}
	if !strings.HasPrefix(info.Bokeh, "0.8") {
		t.Errorf("bokeh version %q", info.Bokeh)
	}

	r, docid, models := buildPage(t, h, "/bokeh/sliders/", "")
	if r.Kind != "object" || len(models) != 30 {
		t.Fatalf("page: kind %q, %d models: %v", r.Kind, len(models), types(models))
	}
	if want := [][3]string{{"SlidersApp", "SlidersApp", "HBox"}}; !slices.Equal(r.ExtraGeneratedClasses, want) {
		t.Errorf("generated classes %v, want %v", r.ExtraGeneratedClasses, want)
	}
	app := find(models, "SlidersApp")
	if app.ID != r.ObjID || app.Attributes["doc"] != docid {
		t.Errorf("objid %s, app %+v", r.ObjID, app)
	}
	var offset model
	for _, m := range models {
		if m.Type == "Slider" && m.Attributes["name"] == "offset" {
			offset = m
		}
	}
	changed, err := update(context.Background(), h, docid, models, offset, 2.9)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if got := types(changed); !slices.Equal(got, []string{"ColumnDataSource", "Slider"}) {
		t.Fatalf("changed models %v, want ColumnDataSource and Slider (the recording's)", got)
	}
	y := find(changed, "ColumnDataSource").Attributes["data"].(map[string]any)["y"].([]any)
	if y[0].(float64) != 2.9 {
		t.Errorf("y[0] = %v after offset 2.9", y[0])
	}

	// A value bokeh refuses is the script's error: nothing comes back.
	_, err = update(context.Background(), h, docid, models, offset, "bad")
	var se *applet.ScriptError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "ValueError") {
		t.Errorf("bad value: %v, want a ValueError", err)
	}
}

// Routes of the test applet: query arguments reach the function, a plain Flask view answers
// itself, a callback that raises is an error, and an unknown path is a 404 from the host.
func TestRoutesAndCallbacks(t *testing.T) {
	bk := applettest.Find(t)
	h, _ := startHost(t, bk, testScript("testapp.py"), nil)
	var rules []string
	for _, r := range h.Info().Routes {
		rules = append(rules, r.Rule)
	}
	slices.Sort(rules)
	if want := []string{"/bokeh/testapp/", "/bokeh/testapp/hello/<name>", "/bokeh/testapp/release", "/bokeh/testapp/waiting"}; !slices.Equal(rules, want) {
		t.Errorf("rules %v, want %v", rules, want)
	}

	_, docid, models := buildPage(t, h, "/bokeh/testapp/", "start=7")
	slider := find(models, "Slider")
	if slider.Attributes["value"] != 7.0 || slider.Attributes["title"] != "value 7" {
		t.Fatalf("slider %+v", slider.Attributes)
	}
	changed, err := update(context.Background(), h, docid, models, slider, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Attributes["title"] != "value 42" {
		t.Errorf("changed %+v", changed)
	}
	_, err = update(context.Background(), h, docid, models, slider, 13)
	var se *applet.ScriptError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "unlucky 13") {
		t.Errorf("raising callback: %v", err)
	}

	r, _, _ := buildPage(t, h, "/bokeh/testapp/hello/world", "")
	if r.Kind != "response" || r.Status != 201 || string(r.Body) != "hello world from defaultuser" {
		t.Errorf("plain view: %+v %q", r, r.Body)
	}
	r, _, _ = buildPage(t, h, "/bokeh/testapp/nothing", "")
	if r.Kind != "response" || r.Status != 404 {
		t.Errorf("unknown path: %+v", r)
	}
}

// A slow callback of one page does not hold up another page's; a call that outlives the
// limit is a timeout.
func TestSlowCallback(t *testing.T) {
	bk := applettest.Find(t)
	h, _ := startHost(t, bk, testScript("testapp.py"), func(o *applet.Options) { o.CallTimeout = 2 * time.Second })
	_, doc1, models1 := buildPage(t, h, "/bokeh/testapp/", "")
	_, doc2, models2 := buildPage(t, h, "/bokeh/testapp/", "")

	slow := make(chan error, 1)
	go func() {
		_, err := update(context.Background(), h, doc1, models1, find(models1, "Slider"), 99)
		slow <- err
	}()
	if _, err := update(context.Background(), h, doc2, models2, find(models2, "Slider"), 5); err != nil {
		t.Fatalf("fast update beside a slow one: %v", err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow callback finished before the release: %v", err)
	default:
	}
	if err := <-slow; !errors.Is(err, applet.ErrTimeout) {
		t.Errorf("slow callback: %v, want a timeout", err)
	}
	// Release the stuck thread; the host keeps serving.
	user := "x"
	r, err := h.Route(context.Background(), applet.RouteCall{Request: applet.Request{Method: "POST",
		Path: "/bokeh/testapp/release", User: &user}, Body: []byte("now")})
	if err != nil || r.Status != 200 || string(r.Body) != "released now" {
		t.Fatalf("release: %v %+v %q", err, r, r.Body)
	}
}

// A host whose every thread is stuck in a callback past the limit is killed and restarted.
func TestStuckHostRestarted(t *testing.T) {
	bk := applettest.Find(t)
	h, _ := startHost(t, bk, testScript("testapp.py"), func(o *applet.Options) {
		o.Threads, o.CallTimeout = 1, time.Second
	})
	first := h.Pid()
	_, docid, models := buildPage(t, h, "/bokeh/testapp/", "")
	if _, err := update(context.Background(), h, docid, models, find(models, "Slider"), 99); !errors.Is(err, applet.ErrTimeout) {
		t.Fatalf("stuck callback: %v, want a timeout", err)
	}
	deadline := time.Now().Add(testWait)
	for {
		if _, _, err := tryPage(h); err == nil && h.Pid() != first && h.Pid() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stuck host (pid %d) was not replaced (pid now %d)", first, h.Pid())
		}
		time.Sleep(pollPeriod)
	}
}

// A host that dies is started again; calls meanwhile say it is unavailable.
func TestRestartAfterCrash(t *testing.T) {
	bk := applettest.Find(t)
	h, _ := startHost(t, bk, testScript("testapp.py"), nil)
	first := h.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testWait)
	sawUnavailable := false
	for {
		_, _, err := tryPage(h)
		if err == nil && h.Pid() != first && h.Pid() != 0 {
			break
		}
		if errors.Is(err, applet.ErrUnavailable) {
			sawUnavailable = true
		} else if err != nil {
			t.Fatalf("during the restart: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restarted host after %v (pid %d)", testWait, h.Pid())
		}
		time.Sleep(pollPeriod)
	}
	if !sawUnavailable {
		t.Error("no call was refused while the host restarted")
	}
}

func tryPage(h *applet.Host) (applet.RouteResult, string, error) {
	docid, pcid := uuid.NewString(), uuid.NewString()
	pc, _ := json.Marshal([]model{{Type: "PlotContext", ID: pcid, Attributes: map[string]any{"id": pcid}}})
	r, err := h.Route(context.Background(), applet.RouteCall{Request: applet.Request{Method: "GET",
		Path: "/bokeh/testapp/"}, DocID: docid, PlotContext: pc})
	return r, docid, err
}

// Close ends the host process.
func TestCloseStopsHost(t *testing.T) {
	bk := applettest.Find(t)
	h, err := applet.Start(context.Background(), applet.Options{Script: testScript("testapp.py"),
		Python: bk.Python, Env: bk.Env, Output: newSyncBuffer()})
	if err != nil {
		t.Fatal(err)
	}
	pid := h.Pid()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("host pid %d still exists after Close (kill 0: %v)", pid, err)
	}
	if _, _, err := tryPage(h); !errors.Is(err, applet.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
}

// Start-up errors say what is wrong and what to do.
func TestStartErrors(t *testing.T) {
	bk := applettest.Find(t)
	for _, c := range []struct {
		name   string
		opts   applet.Options
		inErr  []string
		inLogs string
	}{
		{"script raises", applet.Options{Script: testScript("raises.py")},
			[]string{"raises.py raised while it was imported: ValueError: this script is broken on purpose", "fix the script"},
			"Traceback"},
		{"missing module", applet.Options{Script: testScript("needs_module.py")},
			[]string{"failed to import", "install the Python module 'bokeh_applet_test_module_that_does_not_exist'"}, ""},
		{"no such script", applet.Options{Script: testScript("nothing-here.py")},
			[]string{"nothing-here.py: not a readable file"}, ""},
		{"no interpreter", applet.Options{Script: testScript("testapp.py"), Python: "/nonexistent/python3"},
			[]string{`Python interpreter "/nonexistent/python3" not found`, "--script-python"}, ""},
		{"bokeh not importable", applet.Options{Script: testScript("testapp.py"), Env: []string{"PYTHONPATH="}},
			[]string{"cannot import bokeh 0.8", "bokeh 0.8 is not importable"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := newSyncBuffer()
			o := c.opts
			o.Output = out
			if o.Python == "" {
				o.Python = bk.Python
			}
			if o.Env == nil {
				o.Env = bk.Env
			}
			h, err := applet.Start(context.Background(), o)
			if err == nil {
				h.Close()
				t.Fatal("started")
			}
			for _, want := range c.inErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nlacks %q", err, want)
				}
			}
			if c.inLogs != "" && !strings.Contains(out.String(), c.inLogs) {
				t.Errorf("output lacks %q:\n%s", c.inLogs, out.String())
			}
		})
	}
	if entries, _ := filepath.Glob(filepath.Join(os.TempDir(), "bokeh-applet-host-*")); len(entries) > 0 {
		t.Logf("host folders left in %s: %d (other processes' hosts may be running)", os.TempDir(), len(entries))
	}
}
