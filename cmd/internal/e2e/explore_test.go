package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/browser"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

func TestExplore(t *testing.T) {
	s := cluster.StartServer(t, cluster.Build(t), cluster.ServerOptions{})
	pc := apitest.NewPyClient(s.Root)
	pc.UseDoc(t, "explore")
	ctx, _ := pc.LoadDocument(t)
	plot := apitest.NewPlot(pc.DocID, ctx.ID, 50)
	if r := pc.Push(t, apitest.MarshalModels(t, plot.Models)); r.Status != 200 {
		t.Fatal(r.Status, string(r.Body))
	}
	b := browser.Start(t)
	p := b.NewPage(t, "explore")
	p.Navigate(s.Root + "bokeh/doc/" + pc.DocID + "/" + ctx.ID)
	time.Sleep(3 * time.Second)
	os.MkdirAll("/tmp/shots", 0o755)
	p.Screenshot("/tmp/shots", "explore")
	t.Log(p.ConsoleLog())
	t.Log(browser.Eval[string](p, `document.body.innerHTML.slice(0, 3000)`))
	t.Log(browser.Eval[string](p, `JSON.stringify(window.BokehLive)`))
}
