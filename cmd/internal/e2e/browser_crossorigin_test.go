package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/browser"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// probeJS is what a page of another site tries against a bokeh-server the browser can reach:
// read the user's document list and a document, and write into it both as a CORS request
// (a JSON PUT as BokehJS sends, preflighted) and as a "simple" text/plain post, which
// browsers send without asking. Results land in window.probe.
const probeJS = `<script>
window.probe = {};
function note(k, v) { window.probe[k] = v; }
function read(k, url) {
  fetch(url).then(function (r) { return r.text().then(function (t) { note(k, r.status + " " + t.slice(0, 200)); }); })
    .catch(function (e) { note(k, "blocked: " + e); });
}
read("userinfo", ROOT + "bokeh/userinfo/");
read("models", ROOT + "bokeh/bb/" + DOC + "/");
fetch(ROOT + "bokeh/bb/" + DOC + "/ColumnDataSource/" + SRC + "/", {method: "PUT", headers: {"Content-Type": "application/json"}, body: ATTRS})
  .then(function (r) { note("write-cors", "" + r.status); }).catch(function (e) { note("write-cors", "blocked: " + e); });
fetch(ROOT + "bokeh/bb/" + DOC + "/bulkupsert", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: BODY})
  .then(function (r) { note("write-simple", "sent, " + r.type); }).catch(function (e) { note("write-simple", "blocked: " + e); });
</script>`

// probePage writes y[0] = simpleY with the simple post and y[0] = corsY with the PUT.
func probePage(root, docid, srcID string, simpleY, corsY float64) string {
	body, _ := json.Marshal(fmt.Sprintf(`[{"type": "ColumnDataSource", "attributes": {"id": %q, "data": {"x": [0], "y": [%v]}}}]`, srcID, simpleY))
	attrs, _ := json.Marshal(fmt.Sprintf(`{"data": {"x": [0], "y": [%v]}}`, corsY))
	js := strings.NewReplacer("ROOT", fmt.Sprintf("%q", root), "DOC", fmt.Sprintf("%q", docid), "SRC", fmt.Sprintf("%q", srcID),
		"BODY", string(body), "ATTRS", string(attrs)).Replace(probeJS)
	return embedPage("probe", js)
}

const probeDone = `window.probe && ["userinfo", "models", "write-cors", "write-simple"].every(function (k) { return k in window.probe; })`

// sourceY0OnServer is y[0] of a data source as stored.
func sourceY0OnServer(t *testing.T, pc *apitest.PyClient, srcID string) float64 {
	t.Helper()
	var attrs struct {
		Data struct {
			Y []float64 `json:"y"`
		} `json:"data"`
	}
	r := pc.Do(t, "GET", "bokeh/bb/"+pc.DocID+"/ColumnDataSource/"+srcID+"/", nil, true)
	r.JSON(t, &attrs)
	if len(attrs.Data.Y) == 0 {
		t.Fatalf("source %s has no y: %.200s", srcID, r.Body)
	}
	return attrs.Data.Y[0]
}

// 8. Drive-by protection, in a real browser: a page of another origin can neither read nor
// change the documents of a server on this machine (single-user, the default), except a
// published one, which any site may embed; once the operator lists its origin with
// --allowed-origins, the same pages work.
func (bt *browserTest) crossOriginRefusedThenAllowed(t *testing.T) {
	site := newEmbeddingSite(t)
	closed := cluster.StartServer(t, bt.bin, cluster.ServerOptions{})
	open := cluster.StartServer(t, bt.bin, cluster.ServerOptions{Extra: []string{"--allowed-origins", site.URL}})
	const simpleY, corsY = 666.0, 777.0

	for _, c := range []struct {
		name    string
		s       *cluster.Server
		allowed bool
	}{{"refused", closed, false}, {"allowed", open, true}} {
		target := apitest.NewPyClient(c.s.Root)
		probed := storePlot(t, target, "probed-plot")
		pc := apitest.NewPyClient(c.s.Root)
		plot := storePlot(t, pc, "private-plot")
		pub := apitest.NewPyClient(c.s.Root)
		published := storePlot(t, pub, "published-plot")
		pub.Publish(t)
		site.set("/"+c.name+"-probe.html", probePage(c.s.Root, target.DocID, probed.Source.ID, simpleY, corsY))
		site.set("/"+c.name+"-embed.html", embedPage(c.name, autoloadTag(c.s.Root, pc.DocID, plot.Figure.ID, `data-bokeh-docapikey="`+pc.APIKey+`"`)))
		site.set("/"+c.name+"-public.html", embedPage(c.name+"-public", autoloadTag(c.s.Root, pub.DocID, published.Figure.ID, `data-bokeh-public="true"`)))

		// The probe: reads and writes from the other site's page.
		p := bt.b.NewPage(t, c.name+"-probe")
		p.ExpectFailures(c.s.Root)
		p.Navigate(site.URL + "/" + c.name + "-probe.html")
		p.WaitFor(c.name+": probe finished", probeDone, renderWait)
		probe := browser.Eval[map[string]string](p, `window.probe`)
		t.Logf("%s: what the page of %s got: %v", c.name, site.URL, probe)
		y := sourceY0OnServer(t, target, probed.Source.ID)
		if c.allowed {
			if !strings.HasPrefix(probe["userinfo"], "200 ") || !strings.HasPrefix(probe["models"], "200 ") || probe["write-cors"] != "200" {
				t.Errorf("allowed origin: %v", probe)
			}
			if y != simpleY && y != corsY { // the two writes race
				t.Errorf("allowed origin: the writes did not land (y[0] = %v)", y)
			}
		} else {
			for _, k := range []string{"userinfo", "models", "write-cors"} {
				if !strings.HasPrefix(probe[k], "blocked") {
					t.Errorf("%s from another origin: %q, want blocked", k, probe[k])
				}
			}
			if y == simpleY || y == corsY {
				t.Errorf("a write from another origin changed the document (y[0] = %v)", y)
			}
			// Refused by the server, not only hidden by the browser.
			for _, path := range []string{"/bokeh/userinfo/", "/bokeh/bb/" + target.DocID + "/bulkupsert"} {
				if line := waitLogLine(t, c.s, "path="+path+" status=403"); line == "" {
					t.Errorf("the server did not refuse %s:\n%s", path, lastLines(c.s.Log(), 30))
				}
			}
		}
		p.Screenshot(bt.shots, "8-"+c.name+"-probe")

		// The autoload embed of the private document.
		q := bt.b.NewPage(t, c.name+"-embed")
		q.ExpectFailures(c.s.Root)
		q.Navigate(site.URL + "/" + c.name + "-embed.html")
		if c.allowed {
			waitDrawn(t, q, "allowed origin: private embed")
			q.CheckClean()
		} else {
			// BokehJS asked for the object and was refused; nothing is drawn.
			waitLogLine(t, c.s, "path=/bokeh/objinfo/"+pc.DocID+"/"+plot.Figure.ID+" status=403")
			q.WaitFor("refused embed settled", `document.readyState === "complete"`, renderWait)
			if got := browser.Eval[ink](q, inkJS); got.Ink >= minInk {
				t.Errorf("refused embed drew a plot: %+v", got)
			}
		}
		q.Screenshot(bt.shots, "8-"+c.name+"-embed")

		// The public embed of a published document works from any site.
		r := bt.b.NewPage(t, c.name+"-public")
		r.Navigate(site.URL + "/" + c.name + "-public.html")
		before := waitDrawn(t, r, c.name+": public embed of a published document")
		waitSubscribed(t, r)
		pushUpdate(t, pub, published, newPhase)
		waitUpdated(t, r, c.name+": public embed update", published.Source.ID, newPhase, before)
		r.Screenshot(bt.shots, "8-"+c.name+"-public")
		r.CheckClean()
	}
}

// waitLogLine waits (at most renderWait) for a line of s's log containing substr.
func waitLogLine(t *testing.T, s *cluster.Server, substr string) string {
	t.Helper()
	for deadline := time.Now().Add(renderWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, substr) {
				return l
			}
		}
	}
	return ""
}
