package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
)

const tmp = "temporary-0123456789ABCDEF0123456789ABCDEF"

// browser sends what BokehJS sends in public mode: the temporary-<docid> header, no identity.
func browser(t *testing.T, method, url, docid, temp, body string) *apitest.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if temp != "" {
		req.Header.Set("temporary-"+docid, temp)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func TestCopyOnWriteOverlay(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	owner := apitest.NewPyClient(a.root)
	owner.Register(t, "owner", "pw")
	owner.UseDoc(t, "cow")
	ctx, _ := owner.LoadDocument(t)
	p := apitest.NewPlot(owner.DocID, ctx.ID, 10)
	owner.Push(t, apitest.MarshalModels(t, p.Models))
	modelURL := a.root + "bokeh/bb/" + owner.DocID + "/ColumnDataSource/" + p.Source.ID + "/"

	if r := browser(t, "PUT", modelURL, owner.DocID, tmp, `{"selected": [3]}`); r.Status != http.StatusUnauthorized {
		t.Fatalf("overlay write on an unpublished doc: %d, want 401", r.Status)
	}
	owner.Publish(t)
	a.rec.Reset()
	if r := browser(t, "PUT", modelURL, owner.DocID, tmp, `{"selected": [3]}`); r.Status != 200 {
		t.Fatalf("overlay write by a public viewer: %d %s", r.Status, r.Body)
	}
	msgs := a.rec.Messages()
	if len(msgs) != 1 || msgs[0].Topic != "bokehplot:"+tmp || !strings.Contains(string(msgs[0].Payload), `"doc": "`+owner.DocID+`"`) {
		t.Fatalf("overlay push: %+v", msgs)
	}
	viewer := browser(t, "GET", a.root+"bokeh/objinfo/"+owner.DocID+"/"+p.Figure.ID, owner.DocID, tmp, "")
	if !strings.Contains(string(viewer.Body), `"selected": [3]`) {
		t.Errorf("the viewer does not see its overlay: %.300s", viewer.Body)
	}
	real := owner.Do(t, "GET", "bokeh/bb/"+owner.DocID+"/ColumnDataSource/"+p.Source.ID+"/", nil, true)
	if strings.Contains(string(real.Body), `"selected": [3]`) {
		t.Errorf("an overlay write changed the real document")
	}
	other := browser(t, "GET", a.root+"bokeh/objinfo/"+owner.DocID+"/"+p.Figure.ID, owner.DocID, "temporary-"+strings.Repeat("F", 32), "")
	if other.Status != http.StatusOK || strings.Contains(string(other.Body), `"selected": [3]`) {
		t.Errorf("another viewer sees the first viewer's overlay: %d", other.Status)
	}

	for _, bad := range []string{"not-temporary", owner.DocID, "temporary-xyz", "temporary-FFFF", "temporary-" + strings.Repeat("A", 31),
		"temporary-" + strings.Repeat("A", 65)} {
		if r := browser(t, "PUT", modelURL, owner.DocID, bad, `{"selected": [4]}`); r.Status != http.StatusBadRequest {
			t.Errorf("temporary id %q: %d, want 400", bad, r.Status)
		}
	}

	// gc with a TMP removes only the viewer's own orphans.
	orphan := `[{"type": "Range1d", "attributes": {"id": "ov-orphan"}}]`
	browser(t, "POST", a.root+"bokeh/bb/"+owner.DocID+"/bulkupsert", owner.DocID, tmp, orphan)
	owner.Push(t, []byte(`[{"type": "Range1d", "attributes": {"id": "real-orphan"}}]`))
	if r := browser(t, "POST", a.root+"bokeh/bb/"+owner.DocID+"/gc", owner.DocID, tmp, ""); r.Status != 200 {
		t.Fatalf("overlay gc: %d", r.Status)
	}
	if r := owner.Do(t, "DELETE", "bokeh/bb/"+owner.DocID+"/Range1d/real-orphan/", nil, true); r.Status != 200 {
		t.Errorf("overlay gc deleted a model of the real document (delete answered %d)", r.Status)
	}
}

func TestAuthRules(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	c := apitest.NewPyClient(a.root)
	c.Register(t, "carol", "pw")
	c.UseDoc(t, "d")

	nokey := apitest.Get(t, a.root+"bokeh/userinfo/", map[string]string{"BOKEHUSER": "defaultuser", "BOKEHUSER-API-KEY": "nokey"})
	if nokey.Status != http.StatusUnauthorized {
		t.Errorf("the single-user key must not open a multi-user server: %d", nokey.Status)
	}
	onlyKey := apitest.Get(t, a.root+"bokeh/userinfo/", map[string]string{"BOKEHUSER-API-KEY": c.UserAPIKey})
	if onlyKey.Status != http.StatusUnauthorized {
		t.Errorf("BOKEHUSER-API-KEY without BOKEHUSER: %d, want 401 (no user)", onlyKey.Status)
	}
	r := c.Do(t, "DELETE", "bokeh/doc/"+c.DocID+"/", nil, true)
	if r.Status != 200 || strings.Contains(string(r.Body), c.DocID) {
		t.Fatalf("delete doc: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "DELETE", "bokeh/doc/"+c.DocID+"/", nil, true); r.Status != http.StatusConflict {
		t.Errorf("delete of an unlisted doc: %d, want 409", r.Status)
	}
	if r := c.Do(t, "GET", "bokeh/bb/"+c.DocID+"/", nil, true); r.Status != 200 {
		t.Errorf("an unlinked doc stays readable by its writers: %d", r.Status)
	}
}

func TestSingleUserHasNoAccounts(t *testing.T) {
	a := newTestAPI(t, api.Config{})
	for _, path := range []string{"bokeh/login", "bokeh/register", "bokeh/logout"} {
		if r := apitest.Get(t, a.root+path, nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "multi-user") {
			t.Errorf("%s in single-user mode: %d %s", path, r.Status, r.Body)
		}
	}
}
