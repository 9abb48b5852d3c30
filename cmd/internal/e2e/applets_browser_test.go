package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/bokeh-go/bokeh-server/api/applet/applettest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/browser"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// TestAppletBrowser runs bokeh 0.8.2's own applets (examples/app) in bokeh-server --script
// and uses them in headless chromium as a person would: the sliders applet's sliders with
// the mouse and its text input with the keyboard, the crossfilter applet's plot-type
// select; in single-user mode and as an anonymous visitor of a -m server.
func TestAppletBrowser(t *testing.T) {
	bk := applettest.Find(t)
	bin := cluster.Build(t)
	shots := screenshotDir(t)
	t.Logf("screenshots: %s", shots)
	b := browser.Start(t)
	at := &appletBrowserTest{bk: bk, bin: bin, b: b, shots: shots}
	for _, multi := range []bool{false, true} {
		mode := "SingleUser"
		if multi {
			mode = "MultiUserAnonymous"
		}
		t.Run("Sliders"+mode, func(t *testing.T) { at.sliders(t, multi) })
		t.Run("Crossfilter"+mode, func(t *testing.T) { at.crossfilter(t, multi) })
	}
	t.Run("CallbackRaises", at.callbackRaises)
}

type appletBrowserTest struct {
	bk    applettest.Bokeh
	bin   cluster.Binaries
	b     *browser.Browser
	shots string
}

// canvasJS is the biggest canvas's count of non-white pixels and a hash of all of them.
const canvasJS = `(function () {
  var best = {ink: 0, hash: 0};
  var cs = document.querySelectorAll("canvas");
  for (var k = 0; k < cs.length; k++) {
    var c = cs[k];
    if (!c.width || !c.height) { continue; }
    var copy = document.createElement("canvas");
    copy.width = c.width; copy.height = c.height;
    var cc = copy.getContext("2d", {willReadFrequently: true});
    cc.drawImage(c, 0, 0);
    var d = cc.getImageData(0, 0, c.width, c.height).data, ink = 0, h = 7;
    for (var i = 0; i < d.length; i += 4) {
      h = (Math.imul(h, 31) + d[i] + (d[i+1] << 8) + (d[i+2] << 16) + d[i+3]) | 0;
      if (d[i+3] > 128 && (d[i] < 200 || d[i+1] < 200 || d[i+2] < 200)) { ink++; }
    }
    if (ink > best.ink) { best = {ink: ink, hash: h}; }
  }
  return best;
})()`

type canvasState struct {
	Ink  int `json:"ink"`
	Hash int `json:"hash"`
}

// waitCanvas waits for a plot with at least minInk drawn pixels, different from before
// (when before is not nil).
func waitCanvas(t *testing.T, p *browser.Page, what string, minInk int, before *canvasState) canvasState {
	t.Helper()
	cond := fmt.Sprintf("(%s).ink >= %d", canvasJS, minInk)
	if before != nil {
		cond += fmt.Sprintf(" && (%s).hash !== %d", canvasJS, before.Hash)
	}
	p.WaitFor(what, cond, renderWait)
	return browser.Eval[canvasState](p, canvasJS)
}

// slidersConsistentJS is true when the page's data source is the sine wave of its current
// slider values (SlidersApp.update_data) and the plot's title is the text input's.
const slidersConsistentJS = `(function () {
  var C = Bokeh.Collections, v = {};
  C("Slider").each(function (s) { v[s.get("name")] = s.get("value"); });
  var d = C("ColumnDataSource").models[0].get("data");
  if (!d.x || d.x.length !== 200) { return false; }
  for (var i = 0; i < d.x.length; i++) {
    var y = v.amplitude * Math.sin(v.frequency * d.x[i] + v.phase) + v.offset;
    if (Math.abs(d.y[i] - y) > 1e-9) { return false; }
  }
  return C("Plot").models[0].get("title") === C("TextInput").models[0].get("value");
})()`

// sliderValue is the value of the named slider in the page's models.
func sliderValue(name string) string {
	return fmt.Sprintf(`Bokeh.Collections("Slider").find(function (s) { return s.get("name") === %q; }).get("value")`, name)
}

// trackBox is the page position of a slider's jQuery UI track.
type trackBox struct {
	X, Y, W, H float64
	Handle     float64 // x of the handle's centre
}

func sliderTrack(t *testing.T, p *browser.Page, name string) trackBox {
	t.Helper()
	return browser.Eval[trackBox](p, fmt.Sprintf(`(function () {
  var s = Bokeh.Collections("Slider").find(function (s) { return s.get("name") === %q; });
  var el = document.querySelector('div.slider[id="' + s.id + '"]');
  var r = el.getBoundingClientRect(), h = el.querySelector(".bk-ui-slider-handle").getBoundingClientRect();
  return {X: r.left, Y: r.top, W: r.width, H: r.height, Handle: h.left + h.width / 2};
})()`, name))
}

func (at *appletBrowserTest) server(t *testing.T, example string, multi bool) *cluster.Server {
	return startAppletServer(t, at.bk, at.bin, at.bk.Example(example), cluster.ServerOptions{MultiUser: multi})
}

// The sliders applet: a click on the offset track and a drag of the amplitude handle
// (mouse), then a new title typed into the text input (keyboard); each changes the wave
// and the canvas.
func (at *appletBrowserTest) sliders(t *testing.T, multi bool) {
	s := at.server(t, "examples/app/sliders_applet/sliders_app.py", multi)
	name := "5-sliders"
	if multi {
		name = "6-sliders-anonymous"
	}
	p := at.b.NewPage(t, name)
	p.Navigate(s.Root + "bokeh/sliders/")
	before := waitCanvas(t, p, "sine wave drawn", 1500, nil)
	waitSubscribed(t, p)
	p.WaitFor("the wave matches the sliders", slidersConsistentJS, renderWait)
	shot0 := p.Screenshot(at.shots, name+"-0-loaded")

	// A click at 80% of the offset track, as in the recording (jQuery UI 'slide').
	tr := sliderTrack(t, p, "offset")
	p.Action("click the offset track", chromedp.MouseClickXY(tr.X+0.8*tr.W, tr.Y+tr.H/2))
	p.WaitFor("offset moved", sliderValue("offset")+" > 2", updateWait)
	p.WaitFor("the wave follows the offset", slidersConsistentJS+` && `+
		`Math.abs(Bokeh.Collections("ColumnDataSource").models[0].get("data").y[0] - `+sliderValue("offset")+`) < 1e-9`, updateWait)
	afterOffset := waitCanvas(t, p, "canvas redrawn after the offset click", 1500, &before)
	shot1 := p.Screenshot(at.shots, name+"-1-offset")
	if bytes.Equal(shot0, shot1) {
		t.Error("the screenshots before and after the offset click are identical")
	}

	// A drag of the amplitude handle to a quarter of its track.
	tr = sliderTrack(t, p, "amplitude")
	y := tr.Y + tr.H/2
	steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent("mousePressed", tr.Handle, y, chromedp.ButtonLeft)}
	for i := 1; i <= 10; i++ {
		x := tr.Handle + (tr.X+0.25*tr.W-tr.Handle)*float64(i)/10
		steps = append(steps, chromedp.MouseEvent("mouseMoved", x, y, chromedp.ButtonLeft), chromedp.Sleep(30*time.Millisecond))
	}
	steps = append(steps, chromedp.MouseEvent("mouseReleased", tr.X+0.25*tr.W, y, chromedp.ButtonLeft))
	p.Action("drag the amplitude handle", steps...)
	p.WaitFor("amplitude moved", sliderValue("amplitude")+" < -1", updateWait)
	p.WaitFor("the wave follows the amplitude", slidersConsistentJS, updateWait)
	afterAmp := waitCanvas(t, p, "canvas redrawn after the amplitude drag", 1500, &afterOffset)

	// A new title typed into the text input (its change event fires on Enter).
	input := `input[type="text"][name="title"]`
	p.Action("type a title",
		chromedp.Click(chromedp.CSS(input)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, input)),
		chromedp.SendKeys(chromedp.CSS(input), "changed title"+kb.Enter))
	p.WaitFor("the plot title follows the text input", `Bokeh.Collections("Plot").models[0].get("title") === "changed title"`, updateWait)
	p.WaitFor("everything consistent", slidersConsistentJS, updateWait)
	waitCanvas(t, p, "canvas redrawn with the new title", 1500, &afterAmp)
	p.Screenshot(at.shots, name+"-2-title")
	p.CheckClean()

	// The page wrote only its own copy: a fresh view starts from the original values.
	q := at.b.NewPage(t, name+"-second-view")
	q.Navigate(s.Root + "bokeh/sliders/")
	waitCanvas(t, q, "second view drawn", 1500, nil)
	if got := browser.Eval[float64](q, sliderValue("offset")); got != 0 {
		t.Errorf("a second view starts at offset %v", got)
	}
	q.CheckClean()

	if !multi {
		at.measureSliders(t, s)
	}
}

// measureSliders times slider moves of the real sliders applet as BokehJS sends them: PUT
// to its answer, and PUT to the modelpush frame (figures for the README).
func (at *appletBrowserTest) measureSliders(t *testing.T, s *cluster.Server) {
	v, _ := openApplet(t, nil, s.Root, "bokeh/sliders/")
	_, models := v.objinfo(t)
	var offset wireModel
	for _, m := range models {
		if m.Type == "Slider" && m.Attributes["name"] == "offset" {
			offset = m
		}
	}
	ws := v.watch(t)
	var reply, frame []time.Duration
	for i := 0; i < 40; i++ {
		start := time.Now()
		status, b := v.put(t, offset, map[string]any{"value": float64(i%50)/10 - 2.5, "noop": true})
		reply = append(reply, time.Since(start))
		if status != http.StatusOK {
			t.Fatalf("PUT: %d %s", status, b)
		}
		push := v.nextPush(t, ws)
		frame = append(frame, time.Since(start))
		if len(push) < 2 {
			t.Fatalf("push of %d models", len(push))
		}
	}
	logRoundTrips(t, "sliders applet PUT → answer", reply)
	logRoundTrips(t, "sliders applet PUT → modelpush frame", frame)
}

// crossfilterPlotJS identifies the plot the crossfilter applet shows now.
const crossfilterPlotJS = `Bokeh.Collections("CrossFilter").models[0].get("plot").id`

// The crossfilter applet: the plot-type select, changed with the keyboard, replaces the plot.
// Its options are line, scatter and bar; bar needs pandas.rolling_mean, which pandas 0.18
// removed, so the move goes between line and scatter.
func (at *appletBrowserTest) crossfilter(t *testing.T, multi bool) {
	s := at.server(t, "examples/app/crossfilter/crossfilter_app.py", multi)
	name := "7-crossfilter"
	if multi {
		name = "8-crossfilter-anonymous"
	}
	p := at.b.NewPage(t, name)
	p.Navigate(s.Root + "bokeh/crossfilter/")
	before := waitCanvas(t, p, "crossfilter plot drawn", 1000, nil)
	waitSubscribed(t, p)
	shot0 := p.Screenshot(at.shots, name+"-0-loaded")
	plotBefore := browser.Eval[string](p, crossfilterPlotJS)
	typeBefore := browser.Eval[string](p, `Bokeh.Collections("CrossFilter").models[0].get("plot_type")`)

	sel := `select[name="plot_type"]`
	if browser.Eval[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)) != 1 {
		t.Fatalf("no plot type select; selects: %s", browser.Eval[string](p, `Array.prototype.map.call(document.querySelectorAll("select"), function (s) { return s.outerHTML; }).join("\n")`))
	}
	key := kb.ArrowUp // scatter or bar → line or scatter
	if typeBefore == "line" {
		key = kb.ArrowDown
	}
	p.Action("choose another plot type with the keyboard", chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(key))
	typeAfter := browser.Eval[string](p, fmt.Sprintf(`document.querySelector(%q).value`, sel))
	if typeAfter == typeBefore {
		t.Fatalf("the select still shows %q after ArrowDown", typeAfter)
	}
	p.WaitFor("the server pushed a new plot", fmt.Sprintf(`%s !== %q && Bokeh.Collections("CrossFilter").models[0].get("plot_type") === %q`, crossfilterPlotJS, plotBefore, typeAfter), updateWait)
	waitCanvas(t, p, "the new plot drawn", 1000, &before)
	shot1 := p.Screenshot(at.shots, name+"-1-"+typeAfter)
	if bytes.Equal(shot0, shot1) {
		t.Error("the screenshots before and after the select change are identical")
	}
	p.CheckClean()
	if log := s.Log(); !strings.Contains(log, "/bokeh/bb/") {
		t.Errorf("the server saw no model write:\n%s", lastLines(log, 20))
	}
}

// A callback that raises (the test applet's slider at 13): the write answers 500, nothing
// is pushed, and the page goes on working; the next value goes through.
func (at *appletBrowserTest) callbackRaises(t *testing.T) {
	s := startAppletServer(t, at.bk, at.bin, appletScript("testapp.py"), cluster.ServerOptions{})
	p := at.b.NewPage(t, "9-callback-raises")
	p.Navigate(s.Root + "bokeh/testapp/?start=12")
	p.WaitFor("slider drawn", `document.querySelector(".bk-ui-slider-handle") !== null`, renderWait)
	waitSubscribed(t, p)
	title := `Bokeh.Collections("Slider").models[0].get("title")`
	handle := chromedp.CSS(".bk-ui-slider-handle")
	p.ExpectFailures("/Slider/") // the PUT of 13 answers 500
	p.Action("press the right arrow on the slider handle", chromedp.Focus(handle), chromedp.KeyEvent(kb.ArrowRight))
	p.WaitFor("the slider at 13", `Bokeh.Collections("Slider").models[0].get("value") === 13`, updateWait)
	deadline := time.Now().Add(updateWait)
	for !hasHTTPError(p, "500") {
		if time.Now().After(deadline) {
			t.Fatalf("no 500 for the raising callback; console:\n%s", p.ConsoleLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := browser.Eval[string](p, title); got != "value 12" {
		t.Errorf("after the failed write the title is %q", got)
	}
	p.Screenshot(at.shots, "9-callback-raises-0-at-13")
	// The slider's throttle lets the next slide through after 200 ms.
	time.Sleep(250 * time.Millisecond)
	p.Action("press the right arrow again", chromedp.Focus(handle), chromedp.KeyEvent(kb.ArrowRight))
	p.WaitFor("the next value's callback ran", fmt.Sprintf(`(%s) === "value 14"`, title), updateWait)
	p.Screenshot(at.shots, "9-callback-raises-1-at-14")
	for _, m := range p.Problems() {
		if m.Kind == "exception" || m.Kind == "error" {
			t.Errorf("the page reported %s", m)
		}
	}
	if log := s.Log(); !strings.Contains(log, "RuntimeError: unlucky 13") {
		t.Errorf("the log lacks the callback's error:\n%s", lastLines(log, 20))
	}
}

func hasHTTPError(p *browser.Page, status string) bool {
	for _, m := range p.Messages() {
		if m.Kind == "http-error" && strings.Contains(m.Text, "/Slider/") && strings.Contains(m.Text, ": "+status+" ") {
			return true
		}
	}
	return false
}
