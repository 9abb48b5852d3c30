package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/browser"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// Bounds of the browser scenarios. Nothing asserts on elapsed time; these only stop a
// broken page from hanging the test.
const (
	renderWait = 30 * time.Second // page load until the plot is drawn
	updateWait = 20 * time.Second // bulkupsert until the page shows the new data
	plotPoints = 60
	newPhase   = 1.0 // the phase of the streamed update (the stored plot has phase 0)
)

// What a drawn plot has on its canvas at least (the fixture draws ~6200 dark and ~870
// firebrick pixels at 500x300): dark pixels (lines, text, axes) and red ones (the circles).
const (
	minInk = 2000
	minRed = 300
)

// TestBrowser opens our pages in a real headless chromium with the real BokehJS 0.8.2,
// against real bokeh-server and ws-worker processes. One chromium serves every scenario;
// each page gets a fresh browser context. Screenshots of every step go to one folder.
func TestBrowser(t *testing.T) {
	start := time.Now()
	bin := cluster.Build(t)
	shots := screenshotDir(t)
	t.Logf("screenshots: %s", shots)
	b := browser.Start(t)
	t.Cleanup(func() {
		t.Logf("screenshots: %s (browser tests took %v)", shots, time.Since(start).Round(time.Millisecond))
	})

	bt := &browserTest{bin: bin, b: b, shots: shots}
	t.Run("PlotPages", bt.plotPages)
	t.Run("LiveUpdate", bt.liveUpdate)
	t.Run("MultiUserPublished", bt.multiUserPublished)
	t.Run("AutoloadOtherOrigin", bt.autoloadOtherOrigin)
	t.Run("CrossOriginRefusedThenAllowed", bt.crossOriginRefusedThenAllowed)
	t.Run("FormsAndIndex", bt.formsAndIndex)
	t.Run("WorkerKilled", bt.workerKilled)
	t.Run("APIRestart", bt.apiRestart)
	t.Run("APIRestartWithoutLiveJS", bt.apiRestartWithoutLiveJS)
	t.Run("URLPrefix", bt.urlPrefix)
}

type browserTest struct {
	bin   cluster.Binaries
	b     *browser.Browser
	shots string
}

// screenshotDir is $BOKEH_SCREENSHOT_DIR, else build/screenshots/<timestamp>/ in the repo.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("BOKEH_SCREENSHOT_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		dir = filepath.Join(root, "build", "screenshots", time.Now().Format("20060102-150405.000"))
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	return dir
}

// storePlot does what `output_server(title); figure(); line(); circle(); show()` sends:
// use_doc, load_document (gc + pull), then the bulkupsert of the 26 models.
func storePlot(t *testing.T, pc *apitest.PyClient, title string) *apitest.Plot {
	t.Helper()
	pc.UseDoc(t, title)
	ctx, _ := pc.LoadDocument(t)
	plot := apitest.NewPlot(pc.DocID, ctx.ID, plotPoints)
	if r := pc.Push(t, apitest.MarshalModels(t, plot.Models)); r.Status != http.StatusOK {
		t.Fatalf("push plot: %d %.300s", r.Status, r.Body)
	}
	return plot
}

// pushUpdate is store_objects(source) after the data changed to phase.
func pushUpdate(t *testing.T, pc *apitest.PyClient, plot *apitest.Plot, phase float64) {
	t.Helper()
	if r := pc.Push(t, apitest.SourceUpdate(pc.DocID, plot.Source, plotPoints, phase)); r.Status != http.StatusOK {
		t.Fatalf("push update: %d %.300s", r.Status, r.Body)
	}
}

// inkJS measures the biggest canvas: dark pixels (any channel < 160) and firebrick ones,
// plus a hash of all pixels to see a redraw.
const inkJS = `(function () {
  var best = {canvases: 0, ink: 0, red: 0, hash: 0, width: 0, height: 0};
  var cs = document.querySelectorAll("canvas");
  best.canvases = cs.length;
  for (var k = 0; k < cs.length; k++) {
    var c = cs[k];
    if (!c.width || !c.height) { continue; }
    // Read a copy, so that BokehJS's own context is never read back.
    var copy = document.createElement("canvas");
    copy.width = c.width; copy.height = c.height;
    var d;
    try {
      var cc = copy.getContext("2d", {willReadFrequently: true});
      cc.drawImage(c, 0, 0);
      d = cc.getImageData(0, 0, c.width, c.height).data;
    } catch (e) { continue; }
    var ink = 0, red = 0, h = 7;
    for (var i = 0; i < d.length; i += 4) {
      var r = d[i], g = d[i+1], b = d[i+2], a = d[i+3];
      h = (Math.imul(h, 31) + r + (g << 8) + (b << 16) + a) | 0;
      if (a < 128) { continue; }
      if (r < 160 || g < 160 || b < 160) { ink++; }
      if (r > 140 && g < 90 && b < 90) { red++; }
    }
    if (ink > best.ink) { best.ink = ink; best.red = red; best.hash = h; best.width = c.width; best.height = c.height; }
  }
  return best;
})()`

type ink struct {
	Canvases int `json:"canvases"`
	Ink      int `json:"ink"`
	Red      int `json:"red"`
	Hash     int `json:"hash"`
	Width    int `json:"width"`
	Height   int `json:"height"`
}

// waitDrawn waits until the page's canvas shows a plot with lines and circles.
func waitDrawn(t *testing.T, p *browser.Page, what string) ink {
	t.Helper()
	var last ink
	deadline := time.Now().Add(renderWait)
	for {
		last = browser.Eval[ink](p, inkJS)
		if last.Ink >= minInk && last.Red >= minRed {
			t.Logf("%s: plot drawn: %d canvas(es), %dx%d, %d dark and %d red pixels", what, last.Canvases, last.Width, last.Height, last.Ink, last.Red)
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no plot drawn after %v: %+v (want >= %d dark and >= %d red pixels)\nconsole:\n%s",
				what, renderWait, last, minInk, minRed, p.ConsoleLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sourceY0 is y[0] of the data source as the page's BokehJS holds it.
func sourceY0(srcID string) string {
	return fmt.Sprintf(`Bokeh.Collections("ColumnDataSource").get(%q).get("data").y[0]`, srcID)
}

// waitUpdated waits until the page holds the data of phase, then until the canvas was
// redrawn (differs from before); it returns the new canvas.
func waitUpdated(t *testing.T, p *browser.Page, what, srcID string, phase float64, before ink) ink {
	t.Helper()
	_, y, _ := apitest.SineData(plotPoints, phase)
	want := y[0]
	took := p.WaitFor(what+": new data in the page", fmt.Sprintf("Math.abs(%s - %s) < 1e-9", sourceY0(srcID), strconv.FormatFloat(want, 'g', -1, 64)), updateWait)
	t.Logf("%s: the page had the new data %v after the push", what, took.Round(time.Millisecond))
	p.WaitFor(what+": canvas redrawn", fmt.Sprintf("(%s).hash !== %d && (%s).ink >= %d", inkJS, before.Hash, inkJS, minInk), updateWait)
	return browser.Eval[ink](p, inkJS)
}

// noProblems fails on console errors, exceptions, failed requests and HTTP errors.
func noProblems(p *browser.Page) { p.CheckClean() }

// 1. show(): the PlotContext page and the figure page draw the plot.
func (bt *browserTest) plotPages(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{})
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-plot")
	for _, c := range []struct{ name, id string }{{"plotcontext", plot.Context.ID}, {"figure", plot.Figure.ID}} {
		p := bt.b.NewPage(t, c.name)
		p.Navigate(s.Root + "bokeh/doc/" + pc.DocID + "/" + c.id)
		waitDrawn(t, p, c.name)
		p.WaitFor("badge live", `document.getElementById("bokeh-connection").textContent === "live"`, renderWait)
		p.Screenshot(bt.shots, "1-"+c.name)
		noProblems(p)
	}
}

// 2. A bulkupsert of new data reaches the open page through the worker.
func (bt *browserTest) liveUpdate(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{})
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-live")
	p := bt.b.NewPage(t, "live")
	p.Navigate(s.Root + "bokeh/doc/" + pc.DocID + "/" + plot.Context.ID)
	before := waitDrawn(t, p, "before")
	waitSubscribed(t, p)
	shotBefore := p.Screenshot(bt.shots, "2-before-update")
	pushUpdate(t, pc, plot, newPhase)
	waitUpdated(t, p, "update", plot.Source.ID, newPhase, before)
	shotAfter := p.Screenshot(bt.shots, "2-after-update")
	if bytes.Equal(shotBefore, shotAfter) {
		t.Error("the screenshots before and after the update are identical")
	}
	noProblems(p)
}

// waitSubscribed waits until the page's websocket got subscribesuccess (BokehJS then sets
// Config.clientid), so that a push from now on reaches it.
func waitSubscribed(t *testing.T, p *browser.Page) {
	t.Helper()
	p.WaitFor("subscribed", `Bokeh.require("common/base").Config.clientid`, renderWait)
}

// 3. Multi-user: a published document is visible to anyone with ?public=true; an
// unpublished one sends the anonymous visitor to the login page.
func (bt *browserTest) multiUserPublished(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{MultiUser: true})
	owner := apitest.NewPyClient(s.Root)
	if r := owner.Register(t, "alice", "alice-password-1"); r["status"] != true {
		t.Fatalf("register: %v", r)
	}
	private := storePlot(t, owner, "alice-private")
	privateDoc := owner.DocID
	published := storePlot(t, owner, "alice-published")
	if r := owner.Publish(t); r.Status != http.StatusOK {
		t.Fatalf("publish: %d %.300s", r.Status, r.Body)
	}

	p := bt.b.NewPage(t, "anonymous-published")
	p.Navigate(s.Root + "bokeh/doc/" + owner.DocID + "/" + published.Figure.ID + "?public=true")
	before := waitDrawn(t, p, "published")
	waitSubscribed(t, p)
	p.Screenshot(bt.shots, "3-published-anonymous")
	// The owner keeps streaming; the anonymous visitor sees it.
	pushUpdate(t, owner, published, newPhase)
	waitUpdated(t, p, "published update", published.Source.ID, newPhase, before)
	p.Screenshot(bt.shots, "3-published-anonymous-updated")
	noProblems(p)

	q := bt.b.NewPage(t, "anonymous-unpublished")
	q.Navigate(s.Root + "bokeh/doc/" + privateDoc + "/" + private.Figure.ID + "?public=true")
	q.WaitFor("redirected to the login page", `location.pathname.endsWith("/bokeh/login") && document.getElementById("username") !== null`, renderWait)
	if n := browser.Eval[int](q, `document.querySelectorAll("canvas").length`); n != 0 {
		t.Errorf("the login page shows %d canvas(es)", n)
	}
	q.Screenshot(bt.shots, "3-unpublished-anonymous-login")
	noProblems(q)
}

// embeddingSite is a web site of another origin (another port) serving pages set later.
type embeddingSite struct {
	*httptest.Server
	mu    sync.Mutex
	pages map[string]string
}

func newEmbeddingSite(t *testing.T) *embeddingSite {
	e := &embeddingSite{pages: map[string]string{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		html, ok := e.pages[r.URL.Path]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(html))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *embeddingSite) set(path, html string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pages[path] = html
}

// 4. The autoload_server tag on a page of another origin, non-public and public, where the
// operator allowed that origin (--allowed-origins), as for a notebook.
func (bt *browserTest) autoloadOtherOrigin(t *testing.T) {
	site := newEmbeddingSite(t)
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{Extra: []string{"--allowed-origins", site.URL}})
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-autoload")
	pages := map[string]string{}
	pages["/apikey.html"] = embedPage("apikey", autoloadTag(s.Root, pc.DocID, plot.Figure.ID, `data-bokeh-docapikey="`+pc.APIKey+`"`))
	pages["/public.html"] = embedPage("public", autoloadTag(s.Root, pc.DocID, plot.Figure.ID, `data-bokeh-public="true"`))
	for path, html := range pages {
		site.set(path, html)
	}

	type variant struct {
		name  string
		p     *browser.Page
		drawn ink
	}
	var vs []*variant
	for _, name := range []string{"apikey", "public"} {
		v := &variant{name: name, p: bt.b.NewPage(t, "autoload-"+name)}
		v.p.Navigate(site.URL + "/" + name + ".html")
		v.drawn = waitDrawn(t, v.p, "autoload "+name)
		v.p.WaitFor("live.js loaded by autoload.js", `window.BokehLive && window.BokehLive.state === "live"`, renderWait)
		v.p.WaitFor("plot inside the embedding page", `document.querySelector("script[data-bokeh-data]").previousElementSibling.querySelector("canvas") !== null && document.getElementById("embedded-by").textContent === "`+name+`"`, renderWait)
		waitSubscribed(t, v.p)
		v.p.Screenshot(bt.shots, "4-autoload-"+name)
		vs = append(vs, v)
	}
	// The public tag makes BokehJS send temporary-<docid> on every XHR (copy-on-write).
	headers := browser.Eval[string](vs[1].p, `JSON.stringify(Bokeh.$.ajaxSetup().headers || {})`)
	if !strings.Contains(headers, `"temporary-`+pc.DocID+`"`) {
		t.Errorf("public embed: no temporary-<docid> header set up: %s", headers)
	}
	pushUpdate(t, pc, plot, newPhase)
	for _, v := range vs {
		waitUpdated(t, v.p, "autoload "+v.name, plot.Source.ID, newPhase, v.drawn)
		v.p.Screenshot(bt.shots, "4-autoload-"+v.name+"-updated")
		noProblems(v.p)
	}
	// Every XHR of the public embed carries temporary-<docid>: the browser preflighted them.
	if log := s.Log(); !strings.Contains(log, "method=OPTIONS path=/bokeh/objinfo/"+pc.DocID) {
		t.Errorf("the server saw no CORS preflight of objinfo; its log:\n%s", lastLines(log, 40))
	}
}

// autoloadTag is what autoload_server(plot, session[, public=True]) emits (§6.3).
func autoloadTag(root, docid, modelID, keyAttr string) string {
	id := uuid.NewString()
	return fmt.Sprintf(`<script src="%sbokeh/autoload.js/%s" id="%s" async="true" data-bokeh-data="server" `+
		`data-bokeh-modelid="%s" data-bokeh-root-url="%s" data-bokeh-docid="%s" %s data-bokeh-loglevel="info"></script>`,
		root, id, id, modelID, root, docid, keyAttr)
}

func embedPage(name, tag string) string {
	return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>embedding site: ` + name + `</title></head>
<body>
<h1>A page of another site</h1>
<p>Embedded by: <span id="embedded-by">` + name + `</span></p>
` + tag + `
<p>Text after the plot.</p>
</body>
</html>`
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// 5. Register and log in through the HTML forms; the index lists only this user's documents.
func (bt *browserTest) formsAndIndex(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{MultiUser: true})
	const user, password = "carol", "carol-password-1"

	p := bt.b.NewPage(t, "forms")
	p.Navigate(s.Root + "bokeh/register")
	p.WaitFor("register form", `document.getElementById("password_confirm") !== null`, renderWait)
	p.Action("fill the register form",
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.SendKeys(chromedp.ID("password_confirm"), password),
	)
	p.Screenshot(bt.shots, "5-register-form")
	p.Action("submit the register form", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.WaitFor("index after registering", `location.pathname.endsWith("/bokeh/") && document.readyState === "complete"`, renderWait)

	// Documents of this user (one with a plot) and of another user, made by the Python client.
	mine := apitest.NewPyClient(s.Root)
	if r := mine.Login(t, user, password); r["status"] != true {
		t.Fatalf("login %s: %v", user, r)
	}
	storePlot(t, mine, "carol-plot")
	mine.UseDoc(t, "carol-notes")
	other := apitest.NewPyClient(s.Root)
	if r := other.Register(t, "dave", "dave-password-1"); r["status"] != true {
		t.Fatalf("register dave: %v", r)
	}
	storePlot(t, other, "dave-secret")

	// Log out and back in through the login form.
	p.Navigate(s.Root + "bokeh/logout")
	p.Navigate(s.Root + "bokeh/login")
	p.WaitFor("login form", `document.getElementById("password") !== null`, renderWait)
	p.Action("fill the login form",
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	p.Action("submit the login form", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	p.WaitFor("index lists carol's documents",
		`location.pathname.endsWith("/bokeh/") && /carol-plot/.test(document.getElementById("PlotPane").textContent) && /carol-notes/.test(document.getElementById("PlotPane").textContent)`, renderWait)
	text := browser.Eval[string](p, `document.body.innerText`)
	if strings.Contains(text, "dave") {
		t.Errorf("carol's index shows dave's document:\n%s", text)
	}
	if !strings.Contains(text, "Bokeh Documents for "+user) {
		t.Errorf("index title does not name %s:\n%s", user, text)
	}
	p.Screenshot(bt.shots, "5-index")

	// The list stays live (docchange): carol's new document appears, dave's never does.
	other.UseDoc(t, "dave-later")
	mine.UseDoc(t, "carol-later")
	p.WaitFor("carol's new document listed", `/carol-later/.test(document.getElementById("PlotPane").textContent)`, updateWait)
	if text := browser.Eval[string](p, `document.getElementById("PlotPane").textContent`); strings.Contains(text, "dave") {
		t.Errorf("carol's index shows dave's document:\n%s", text)
	}

	// Expanding a document loads and draws its plot (bokehinfo, bootstrap's collapse).
	p.Action("open carol-plot", chromedp.Evaluate[chromedp.Void](`(function () {
		var links = document.querySelectorAll("a.bokehdoclabel");
		for (var i = 0; i < links.length; i++) {
			if (/carol-plot/.test(links[i].textContent)) { links[i].click(); return; }
		}
		throw new Error("no carol-plot panel");
	})()`))
	waitDrawn(t, p, "index: carol-plot expanded")
	p.WaitFor("panel opened", `document.querySelector(".panel-collapse.collapse.in canvas") !== null && document.querySelector(".collapsing") === null`, renderWait)
	p.Screenshot(bt.shots, "5-index-expanded")
	noProblems(p)
}

// 6. Two workers; the page's worker is killed; live.js reconnects through wsurl to a live
// worker and shows the update pushed meanwhile.
func (bt *browserTest) workerKilled(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{Workers: 2})
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-failover")
	p := bt.b.NewPage(t, "failover")
	p.Navigate(s.Root + "bokeh/doc/" + pc.DocID + "/" + plot.Context.ID)
	before := waitDrawn(t, p, "before kill")
	waitSubscribed(t, p)
	p.WaitFor("badge live", `document.getElementById("bokeh-connection").textContent === "live"`, renderWait)
	p.Screenshot(bt.shots, "6-before-kill")

	conn := browser.Eval[string](p, `Bokeh.require("server/serverutils").wswrapper.ws_conn_string`)
	port := wsPort(t, conn)
	pid := workerPid(t, s, port)
	t.Logf("the page's websocket is %s: killing ws-worker pid %d", conn, pid)
	p.ExpectFailures(":" + strconv.Itoa(port) + "/") // the dead worker's socket and retries
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	p.WaitFor("page noticed the closed socket", `window.BokehLive.state !== "live" || window.BokehLive.reconnects > 0`, updateWait)
	// Pushed while the page has no socket: live.js reloads the document after reconnecting.
	pushUpdate(t, pc, plot, newPhase)
	after := waitUpdated(t, p, "pushed during the outage", plot.Source.ID, newPhase, before)
	p.WaitFor("reconnected and live", `window.BokehLive.reconnects >= 1 && window.BokehLive.state === "live" && document.getElementById("bokeh-connection").textContent === "live"`, updateWait)
	live := browser.Eval[map[string]any](p, `window.BokehLive`)
	now := browser.Eval[string](p, `Bokeh.require("server/serverutils").wswrapper.ws_conn_string`)
	t.Logf("after the kill: BokehLive %v, websocket %s", live, now)
	if newPort := wsPort(t, now); newPort != port {
		t.Logf("reconnected to the other worker (:%d)", newPort)
	} else {
		t.Logf("reconnected to the restarted worker on the same port")
	}
	p.Screenshot(bt.shots, "6-after-reconnect")
	// The new socket is subscribed: a push now arrives over it.
	pushUpdate(t, pc, plot, 2*newPhase)
	waitUpdated(t, p, "pushed after the reconnect", plot.Source.ID, 2*newPhase, after)
	p.Screenshot(bt.shots, "6-after-second-update")
	noProblems(p)
}

// 6b. The API is killed with -9 and restarted while its worker lives (bokeh-server
// --no-ws-start and a ws-worker started by hand); the first update after the restart is
// the last one. The worker's ZeroMQ socket reconnects, it tells the page to resync, and
// live.js reloads the document in place (no page reload): the page shows that update.
func (bt *browserTest) apiRestart(t *testing.T) {
	s, _ := handStartedAPI(t, nil, nil)
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-api-restart")
	p := bt.b.NewPage(t, "api-restart")
	p.Navigate(s.Root + "bokeh/doc/" + pc.DocID + "/" + plot.Context.ID)
	before := waitDrawn(t, p, "before the restart")
	waitSubscribed(t, p)
	p.WaitFor("badge live", `document.getElementById("bokeh-connection").textContent === "live"`, renderWait)
	browser.Eval[bool](p, `window.sameDocument = true`)
	p.Screenshot(bt.shots, "6b-before-restart")

	s.Kill(t)
	time.Sleep(restartGap)
	s.Restart(t)
	pushUpdate(t, pc, plot, newPhase)
	waitUpdated(t, p, "the first update after the restart", plot.Source.ID, newPhase, before)
	p.WaitFor("resynced and live", `window.BokehLive.resyncs >= 1 && window.BokehLive.state === "live"`, updateWait)
	if !browser.Eval[bool](p, `window.sameDocument === true`) {
		t.Error("the page was reloaded as a whole; live.js should have resynced it in place")
	}
	t.Logf("after the restart: BokehLive %v", browser.Eval[map[string]any](p, `window.BokehLive`))
	p.Screenshot(bt.shots, "6b-after-restart")
	noProblems(p)
}

// 6c. As 6b, on a page of another site that loads BokehJS itself, without live.js (as
// BokehJS pages of other servers do): the worker's debug:debug:reload makes BokehJS
// reload the whole page, which then shows the update.
func (bt *browserTest) apiRestartWithoutLiveJS(t *testing.T) {
	// The embedding page is of another origin, which the operator allowed (the document is
	// not published).
	site := newEmbeddingSite(t)
	s, _ := handStartedAPI(t, []string{"--allowed-origins", site.URL}, nil)
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "browser-no-livejs")
	id := uuid.NewString()
	site.set("/", embedPage("bokehjs only", fmt.Sprintf(`<script src="%sbokehjs/static/js/bokeh.js"></script>
<link rel="stylesheet" href="%sbokehjs/static/css/bokeh.css">
<script id="%s" type="text/plain" data-bokeh-data="server" data-bokeh-modelid="%s" data-bokeh-root-url="%s"
  data-bokeh-docid="%s" data-bokeh-docapikey="%s" data-bokeh-loglevel="info"></script>
<script>Bokeh.embed.inject_plot(%q);</script>`, s.Root, s.Root, id, plot.Figure.ID, s.Root, pc.DocID, pc.APIKey, id)))
	p := bt.b.NewPage(t, "no-livejs")
	p.Navigate(site.URL + "/")
	before := waitDrawn(t, p, "before the restart")
	waitSubscribed(t, p)
	if browser.Eval[bool](p, `typeof window.BokehLive !== "undefined"`) {
		t.Fatal("live.js is loaded; this page must do without it")
	}
	browser.Eval[bool](p, `window.sameDocument = true`)

	p.ExpectFailures(s.Root) // requests of the page while the API is down
	s.Kill(t)
	time.Sleep(restartGap)
	s.Restart(t)
	pushUpdate(t, pc, plot, newPhase)
	p.WaitFor("the page reloaded", `window.sameDocument === undefined && typeof Bokeh !== "undefined"`, updateWait)
	waitUpdated(t, p, "the first update after the restart", plot.Source.ID, newPhase, before)
	p.Screenshot(bt.shots, "6c-reloaded-after-restart")
}

// wsPort is the port of a ws:// URL.
func wsPort(t *testing.T, conn string) int {
	t.Helper()
	rest, ok := strings.CutPrefix(conn, "ws://")
	if !ok {
		t.Fatalf("websocket URL %q", conn)
	}
	hostport, _, _ := strings.Cut(rest, "/")
	i := strings.LastIndexByte(hostport, ':')
	port, err := strconv.Atoi(hostport[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("websocket URL %q has no port", conn)
	}
	return port
}

// workerPid finds the auto-started ws-worker child of s listening on port.
func workerPid(t *testing.T, s *cluster.Server, port int) int {
	t.Helper()
	want := []string{"--ws-port", strconv.Itoa(port)}
	var seen []string
	for _, pid := range cluster.ChildPids(s.Pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		seen = append(seen, strings.Join(args, " "))
		for i := 0; i+1 < len(args); i++ {
			if args[i] == want[0] && args[i+1] == want[1] {
				return pid
			}
		}
	}
	t.Fatalf("no child of bokeh-server (pid %d) runs with --ws-port %d; children:\n%s", s.Pid(), port, strings.Join(seen, "\n"))
	return 0
}

// 7. With --url-prefix: BokehJS takes its prefix from the page URL, so every page must live
// under P/bokeh/; the index at P/ sends the browser there.
func (bt *browserTest) urlPrefix(t *testing.T) {
	s := cluster.StartServer(t, bt.bin, cluster.ServerOptions{Prefix: "/plots"})
	pc := apitest.NewPyClient(s.Root)
	plot := storePlot(t, pc, "prefixed-plot")

	p := bt.b.NewPage(t, "prefix-index")
	p.Navigate(s.Root)
	p.WaitFor("index lists the document", `location.pathname === "/plots/bokeh/" && /prefixed-plot/.test(document.getElementById("PlotPane").textContent)`, renderWait)
	// The list loads over HTTP before the worker confirms its topic; live.js records that.
	p.WaitFor("list subscribed", `window.BokehLive && window.BokehLive.subscribed["bokehuser:defaultuser"] === true`, renderWait)
	// A new document appears in the open list (docchange on bokehuser:defaultuser).
	apitest.NewPyClient(s.Root).UseDoc(t, "prefixed-later")
	p.WaitFor("new document listed", `/prefixed-later/.test(document.getElementById("PlotPane").textContent)`, updateWait)
	p.Screenshot(bt.shots, "7-prefix-index")
	noProblems(p)

	for _, c := range []struct{ name, path string }{
		{"object", "bokeh/doc/" + pc.DocID + "/" + plot.Figure.ID},
		{"show", "bokeh/doc/prefixed-plot/show"},
	} {
		q := bt.b.NewPage(t, "prefix-"+c.name)
		q.Navigate(s.Root + c.path)
		before := waitDrawn(t, q, "prefix "+c.name)
		waitSubscribed(t, q)
		q.Screenshot(bt.shots, "7-prefix-"+c.name)
		if c.name == "object" {
			pushUpdate(t, pc, plot, newPhase)
			waitUpdated(t, q, "prefix update", plot.Source.ID, newPhase, before)
		}
		noProblems(q)
	}
}
