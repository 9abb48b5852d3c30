package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/storage"
)

// newDocWithPlot stores the standard plot in a fresh document.
func newDocWithPlot(t *testing.T, a *testAPI) (*apitest.PyClient, *apitest.Plot) {
	t.Helper()
	c := apitest.NewPyClient(a.root)
	c.UseDoc(t, "doc-"+t.Name())
	ctx, _ := c.LoadDocument(t)
	p := apitest.NewPlot(c.DocID, ctx.ID, 10)
	if r := c.Push(t, apitest.MarshalModels(t, p.Models)); r.Status != 200 {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	return c, p
}

func TestRawNumbersAndBareTokens(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	a.rec.Reset()
	body := `[{"type": "ColumnDataSource", "id": "` + p.Source.ID + `", "attributes": {"id": "` + p.Source.ID +
		`", "data": {"x": [0.1000000000000000055511151231257827, 123456789012345678901234567890, NaN, Infinity, -Infinity]}}}]`
	r := c.Push(t, []byte(body))
	if r.Status != 200 {
		t.Fatalf("push with NaN: %d %s", r.Status, r.Body)
	}
	want := `[0.1000000000000000055511151231257827, 123456789012345678901234567890, NaN, Infinity, -Infinity]`
	if !strings.Contains(string(r.Body), want) {
		t.Errorf("response does not keep the numbers as sent: %s", r.Body)
	}
	pulled := c.Do(t, "GET", "bokeh/bb/"+c.DocID+"/ColumnDataSource/"+p.Source.ID+"/", nil, true)
	if !strings.Contains(string(pulled.Body), want) {
		t.Errorf("pull does not return the numbers verbatim: %s", pulled.Body)
	}
	if !strings.Contains(string(pulled.Body), `"column_names"`) {
		t.Errorf("merge lost attributes not in the update: %s", pulled.Body)
	}
	msgs := a.rec.Messages()
	if len(msgs) != 1 || msgs[0].Topic != "bokehplot:"+c.DocID {
		t.Fatalf("published %+v", msgs)
	}
	if !json.Valid(msgs[0].Payload) || !strings.Contains(string(msgs[0].Payload), `"NaN", "Infinity", "-Infinity"`) {
		t.Errorf("browser-bound push not sanitized: %s", msgs[0].Payload)
	}
	info := apitest.Get(t, a.root+"bokeh/bokehinfo/"+c.DocID+"/", nil)
	if !json.Valid(info.Body) {
		t.Errorf("bokehinfo is not valid JSON for browsers: %.200s", info.Body)
	}
}

func TestPutPatchMergeAndNoop(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	url := "bokeh/bb/" + c.DocID + "/ColumnDataSource/" + p.Source.ID + "/"
	r := c.Do(t, "PATCH", url, []byte(`{"selected": [1, 2], "noop": true}`), true)
	if r.Status != 200 || string(r.Body) != `{"noop": true}` {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	var attrs map[string]any
	c.Do(t, "GET", url, nil, true).JSON(t, &attrs)
	if _, ok := attrs["noop"]; ok {
		t.Error("noop was stored")
	}
	if attrs["data"] == nil || attrs["doc"] != c.DocID || attrs["id"] != p.Source.ID {
		t.Errorf("PATCH lost attributes: %v", attrs)
	}
	if sel, _ := attrs["selected"].([]any); len(sel) != 2 {
		t.Errorf("PATCH not applied: %v", attrs["selected"])
	}
	msgs := a.rec.Messages()
	last := msgs[len(msgs)-1]
	if !strings.Contains(string(last.Payload), `"column_names"`) {
		t.Errorf("PATCH push must carry the full merged model: %.200s", last.Payload)
	}
}

func TestCreateAndDeleteModel(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, _ := newDocWithPlot(t, a)
	r := c.Do(t, "POST", "bokeh/bb/"+c.DocID+"/Range1d/", []byte(`{"id": "r1", "start": 0, "end": 5}`), true)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"start": 0`) {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r = c.Do(t, "DELETE", "bokeh/bb/"+c.DocID+"/Range1d/r1/", nil, true)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"end": 5`) {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "DELETE", "bokeh/bb/"+c.DocID+"/Range1d/r1/", nil, true); r.Status != http.StatusNotFound {
		t.Fatalf("second delete: %d, want 404", r.Status)
	}
	for _, m := range a.rec.Messages() {
		if strings.Contains(string(m.Payload), "modeldel") {
			t.Error("modeldel published; BokehJS throws on it")
		}
	}
}

func TestEmptyBulkUpsertPushesWholeDocument(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	a.rec.Reset()
	r := c.Push(t, []byte(`[]`))
	var push struct {
		Modelspecs []apitest.Model `json:"modelspecs"`
	}
	r.JSON(t, &push)
	if len(push.Modelspecs) != len(p.Models) || len(a.rec.Messages()) != 1 {
		t.Fatalf("empty bulkupsert answered %d models, published %d", len(push.Modelspecs), len(a.rec.Messages()))
	}
}

func TestBodyLimit(t *testing.T) {
	a := newTestAPI(t, api.Config{MaxBodyBytes: 1000})
	c := apitest.NewPyClient(a.root)
	c.UseDoc(t, "limits")
	big := apitest.SourceUpdate(c.DocID, apitest.Model{ID: "s1"}, 500, 0)
	if r := c.Push(t, big); r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.Body), "1000 bytes") {
		t.Fatalf("oversized body: %d %s, want 413 naming the limit", r.Status, r.Body)
	}
	if n := len(c.Pull(t)); n != 1 {
		t.Fatalf("a refused request stored something: %d models", n)
	}
}

// unavailableStore fails like a redis that went away.
type unavailableStore struct{ storage.Store }

func (unavailableStore) Doc(context.Context, string) (storage.Doc, error) {
	return storage.Doc{}, storage.ErrUnavailable
}

func TestStorageUnavailableIs503(t *testing.T) {
	a := newTestAPIWithStore(t, api.Config{}, unavailableStore{storage.NewMemory(0)})
	r := apitest.Get(t, a.root+"bokeh/bb/some-doc/", nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "retry") {
		t.Fatalf("status %d %s, want 503 with a message", r.Status, r.Body)
	}
}

func TestGCKeepsReachableAndEmptyWritesAreSkipped(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	// A second PlotContext (a client pushing a fresh Document) must not break anything.
	stray := `[{"type": "PlotContext", "id": "stray", "attributes": {"id": "stray", "children": []}}]`
	if r := c.Push(t, []byte(stray)); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := c.GC(t); r.Status != 200 {
		t.Fatalf("gc with two PlotContexts: %d", r.Status)
	}
	if r := c.GC(t); r.Status != 200 { // nothing left to delete
		t.Fatalf("second gc: %d", r.Status)
	}
	if n := len(c.Pull(t)); n != len(p.Models) {
		t.Fatalf("after gc: %d models, want %d", n, len(p.Models))
	}
}

// A streaming update publishes exactly its answer, whatever the body's layout: the
// payload is what browsers receive after "topic:" (no escaping on the way).
func TestPushPublishesTheAnswer(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	plainBody := apitest.SourceUpdate(c.DocID, p.Source, 1000, 0.5)
	pretty := strings.ReplaceAll(string(plainBody), ", 0.", ",\n  0.")
	withStrings := strings.Replace(string(plainBody), `"x": [`, `"x": ["label \"q\" é </script>", `, 1)
	for _, c2 := range []struct{ name, body string }{
		{"numbers", string(plainBody)}, {"pretty-printed", pretty}, {"strings in x", withStrings},
	} {
		a.rec.Reset()
		r := c.Push(t, []byte(c2.body))
		if r.Status != 200 {
			t.Fatalf("%s: push %d %s", c2.name, r.Status, r.Body)
		}
		msgs := a.rec.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%s: published %d messages", c2.name, len(msgs))
		}
		if msgs[0].Topic != "bokehplot:"+c.DocID || string(msgs[0].Payload) != string(r.Body) {
			t.Errorf("%s: published %s %.80s…, answered %.80s…", c2.name, msgs[0].Topic, msgs[0].Payload, r.Body)
		}
	}
}

// Concurrent PUTs each store their own body: a write's attributes point into its pooled
// request buffer until they are merged, so the buffer must not go back to the pool (and to
// another request) before that.
func TestConcurrentPutsKeepTheirOwnBodies(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	c, p := newDocWithPlot(t, a)
	const writers, rounds = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			m := p.Models[1+w] // one model of the plot each; PUT merges the mark into it
			path := "bokeh/bb/" + c.DocID + "/" + m.Type + "/" + m.ID + "/"
			for r := range rounds {
				mark := fmt.Sprintf("w%d-r%d-%s", w, r, strings.Repeat("x", 4000+w))
				body := fmt.Sprintf(`{"id": %q, "doc": %q, "mark": %q}`, m.ID, c.DocID, mark)
				if resp := c.Do(t, "PUT", path, []byte(body), true); resp.Status != 200 {
					t.Errorf("PUT %s: %d %s", path, resp.Status, resp.Body)
					return
				}
				got := c.Do(t, "GET", path, nil, true)
				if !strings.Contains(string(got.Body), mark) {
					t.Errorf("%s round %d stored %.120s…, want its own mark %.20s…", path, r, got.Body, mark)
					return
				}
			}
		})
	}
	wg.Wait()
}
