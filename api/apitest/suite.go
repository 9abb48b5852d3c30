package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Target is a running server the suite talks to: in-process (unit tests) or real processes
// (black-box tests), so the same test bodies cover both.
type Target struct {
	// Root is the server's root URL including the prefix, ending in '/'.
	Root string
	// Watch, if set, subscribes to a topic like a browser would and returns what arrives.
	Watch func(tb testing.TB, topic, auth string) Watcher
	// Restart, if set, restarts the server keeping its data (persistent backends).
	Restart func(tb testing.TB)
}

// Watcher yields the frames ("topic:payload") delivered for a subscription.
type Watcher interface {
	Next(tb testing.TB, timeout time.Duration) (string, bool)
}

// pushWait bounds waiting for a push that must arrive; generous because CI machines stall.
const pushWait = 10 * time.Second

// storePlot is output_server(title) + figure + show(): the §7.2 sequence.
func storePlot(t *testing.T, c *PyClient, title string, points int) *Plot {
	t.Helper()
	c.UseDoc(t, title)
	ctx, _ := c.LoadDocument(t)
	p := NewPlot(c.DocID, ctx.ID, points)
	r := must(t, c.Push(t, MarshalModels(t, p.Models)), "push plot")
	var push struct {
		Msgtype    string  `json:"msgtype"`
		Modelspecs []Model `json:"modelspecs"`
	}
	r.JSON(t, &push)
	if push.Msgtype != "modelpush" || len(push.Modelspecs) != len(p.Models) {
		t.Fatalf("push answered msgtype %q with %d models, want modelpush with %d", push.Msgtype, len(push.Modelspecs), len(p.Models))
	}
	for _, m := range push.Modelspecs {
		if m.Attributes["doc"] != c.DocID || m.Attributes["id"] != m.ID {
			t.Fatalf("pushed model %s/%s has doc %v id %v", m.Type, m.ID, m.Attributes["doc"], m.Attributes["id"])
		}
		if m.ID == p.Figure.ID && m.Subtype != "Figure" {
			t.Errorf("subtype of the figure not echoed: %q", m.Subtype)
		}
	}
	return p
}

// SingleUser replays the single-user sequences of §7.1-§7.2.
func SingleUser(t *testing.T, tg Target) {
	c := NewPyClient(tg.Root)
	title := fmt.Sprintf("plot-%d", time.Now().UnixNano())
	var plot *Plot

	t.Run("StorePlot", func(t *testing.T) {
		if u := c.UserInfo(t); u.Username != "defaultuser" {
			t.Fatalf("userinfo username %q, want defaultuser", u.Username)
		}
		plot = storePlot(t, c, title, 100)
		models := c.Pull(t)
		if len(models) != len(plot.Models) {
			t.Fatalf("pull returned %d models, want %d", len(models), len(plot.Models))
		}
		for _, m := range models {
			if m.Subtype != "" {
				t.Errorf("stored model %s came back with subtype %q", m.ID, m.Subtype)
			}
			if m.Attributes["doc"] != c.DocID {
				t.Errorf("model %s served without doc", m.ID)
			}
		}
	})
	if plot == nil {
		t.FailNow()
	}

	t.Run("Streaming", func(t *testing.T) {
		var w Watcher
		if tg.Watch != nil {
			w = tg.Watch(t, "bokehplot:"+c.DocID, readonlyKey(t, c))
		}
		const updates = 20
		for i := 0; i < updates; i++ {
			r := must(t, c.Push(t, SourceUpdate(c.DocID, plot.Source, 200, float64(i))), "store_objects")
			var push struct {
				Modelspecs []Model `json:"modelspecs"`
			}
			r.JSON(t, &push)
			if len(push.Modelspecs) != 1 || push.Modelspecs[0].ID != plot.Source.ID {
				t.Fatalf("update %d answered %d models", i, len(push.Modelspecs))
			}
			if push.Modelspecs[0].Attributes["column_names"] == nil {
				t.Fatalf("update %d lost an attribute", i)
			}
		}
		if w != nil {
			for i := 0; i < updates; i++ {
				frame, ok := w.Next(t, pushWait)
				if !ok {
					t.Fatalf("push %d of %d did not arrive", i+1, updates)
				}
				checkPushFrame(t, frame, c.DocID, plot.Source.ID, float64(i))
			}
		}
		src := pullModel(t, c, plot.Source.ID)
		_, y, _ := SineData(200, updates-1)
		got := src.Attributes["data"].(map[string]any)["y"].([]any)
		if len(got) != 200 || got[5].(float64) != y[5] {
			t.Fatalf("stored data is not the last update")
		}
	})

	t.Run("LoadDocumentFreshSession", func(t *testing.T) {
		fresh := NewPyClient(tg.Root)
		fresh.UseDoc(t, title)
		if fresh.DocID != c.DocID {
			t.Fatalf("fresh session found doc %s, want %s", fresh.DocID, c.DocID)
		}
		ctx, models := fresh.LoadDocument(t)
		children, _ := ctx.Attributes["children"].([]any)
		if len(children) != 1 || len(models) != len(plot.Models) {
			t.Fatalf("load_document: %d children, %d models", len(children), len(models))
		}
	})

	t.Run("GCDropsUnreachable", func(t *testing.T) {
		orphan := newModel("Range1d", map[string]any{"start": 0, "end": 1, "doc": c.DocID})
		must(t, c.Push(t, MarshalModels(t, []Model{orphan})), "push orphan")
		if n := len(c.Pull(t)); n != len(plot.Models) {
			t.Fatalf("pull shows %d models, an unreachable one leaked", n)
		}
		must(t, c.GC(t), "gc")
		r := c.Do(t, "GET", "bokeh/bb/"+c.DocID+"/Range1d/"+orphan.ID+"/", nil, true)
		if r.Status != http.StatusNotFound {
			t.Fatalf("orphan after gc: status %d", r.Status)
		}
	})

	t.Run("PublishThenAnonymousRead", func(t *testing.T) {
		must(t, c.Publish(t), "publish")
		r := Get(t, tg.Root+"bokeh/objinfo/"+c.DocID+"/"+plot.Figure.ID, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("anonymous objinfo: %d", r.Status)
		}
		var info struct {
			Type      string  `json:"type"`
			AllModels []Model `json:"all_models"`
			APIKey    string  `json:"apikey"`
		}
		r.JSON(t, &info)
		if info.Type != "Plot" || len(info.AllModels) != len(plot.Models)-1 || info.APIKey == "" {
			t.Fatalf("objinfo: type %q, %d models, apikey %q", info.Type, len(info.AllModels), info.APIKey)
		}
	})

	t.Run("Client070", func(t *testing.T) {
		// bokeh 0.7.0's output_server: no gc before the pull, and plots carry attributes the
		// original 0.8.2 server refused (GlyphRenderer.server_data_source, cont_ranges, ...).
		old := NewPyClient(tg.Root)
		old.UseDoc(t, title+"-070")
		models := old.Pull(t)
		if len(models) != 1 || models[0].Type != "PlotContext" {
			t.Fatalf("0.7.0 pull of a new doc: %d models", len(models))
		}
		p := NewPlot(old.DocID, models[0].ID, 20)
		for _, m := range p.Models {
			switch m.Type {
			case "GlyphRenderer":
				m.Attributes["server_data_source"] = nil
			case "ColumnDataSource":
				m.Attributes["cont_ranges"] = map[string]any{}
				m.Attributes["discrete_ranges"] = map[string]any{}
			}
		}
		must(t, old.Push(t, MarshalModels(t, p.Models)), "0.7.0 push")
		if r := must(t, old.Do(t, "GET", "bokeh/objinfo/"+old.DocID+"/"+p.Figure.ID, nil, true), "objinfo"); !strings.Contains(string(r.Body), "server_data_source") {
			t.Fatal("0.7.0 attributes were not stored as sent")
		}
		must(t, old.Push(t, SourceUpdate(old.DocID, p.Source, 20, 1)), "0.7.0 update")
	})

	t.Run("BadInput", func(t *testing.T) {
		before := c.Pull(t)
		for name, body := range map[string]string{
			"truncated": `[{"type": "Plot", "id": "x", "attributes": {`,
			"not array": `{"type": "Plot"}`,
			"colon id":  `[{"type": "Plot", "attributes": {"id": "a:b"}}]`,
			"no type":   `[{"attributes": {"id": "x"}}]`,
			"half good": `[{"type": "Range1d", "attributes": {"id": "ok"}}, {"type": "Plot", "attributes": "nope"}]`,
		} {
			r := c.Push(t, []byte(body))
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "error") {
				t.Errorf("%s: status %d body %s, want 400 with a message", name, r.Status, r.Body)
			}
		}
		if r := c.Do(t, "GET", "bokeh/bb/no-such-doc/", nil, true); r.Status != http.StatusNotFound {
			t.Errorf("unknown doc: status %d, want 404", r.Status)
		}
		if r := c.Do(t, "GET", "bokeh/bb/"+c.DocID+"/Plot/no-such-model/", nil, true); r.Status != http.StatusNotFound {
			t.Errorf("unknown model: status %d, want 404", r.Status)
		}
		if after := c.Pull(t); len(after) != len(before) {
			t.Errorf("rejected requests changed the document: %d -> %d models", len(before), len(after))
		}
	})

	if tg.Restart != nil {
		t.Run("SurvivesRestart", func(t *testing.T) {
			tg.Restart(t)
			again := NewPyClient(tg.Root)
			again.UseDoc(t, title)
			if again.DocID != c.DocID || len(again.Pull(t)) != len(plot.Models) {
				t.Fatalf("after restart: doc %s with %d models", again.DocID, len(again.Pull(t)))
			}
		})
	}
}

func readonlyKey(t *testing.T, c *PyClient) string {
	t.Helper()
	var info struct {
		APIKey string `json:"apikey"`
	}
	must(t, c.Do(t, "GET", "bokeh/bokehinfo/"+c.DocID+"/", nil, true), "bokehinfo").JSON(t, &info)
	return info.APIKey
}

func pullModel(t *testing.T, c *PyClient, id string) Model {
	t.Helper()
	for _, m := range c.Pull(t) {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("model %s not in the document", id)
	return Model{}
}

// checkPushFrame checks a websocket frame of an update with the given phase.
func checkPushFrame(t *testing.T, frame, docid, srcID string, phase float64) {
	t.Helper()
	topic := "bokehplot:" + docid + ":"
	if !strings.HasPrefix(frame, topic) {
		t.Fatalf("frame does not start with %q: %.80s", topic, frame)
	}
	var push struct {
		Msgtype    string  `json:"msgtype"`
		Modelspecs []Model `json:"modelspecs"`
	}
	if err := json.Unmarshal([]byte(frame[len(topic):]), &push); err != nil {
		t.Fatalf("frame payload is not JSON (%v): %.200s", err, frame)
	}
	if push.Msgtype != "modelpush" || len(push.Modelspecs) != 1 || push.Modelspecs[0].ID != srcID {
		t.Fatalf("frame is not the source's modelpush: %.200s", frame)
	}
	_, y, _ := SineData(200, phase)
	got := push.Modelspecs[0].Attributes["data"].(map[string]any)["y"].([]any)
	if got[7].(float64) != y[7] {
		t.Fatalf("frames out of order: got the update of another phase than %v", phase)
	}
}
