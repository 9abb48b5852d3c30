package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// attack is one row of the suite: what an attacker tries, which issue named it, and a run
// that performs it against the real programs and asserts that it is denied (and, where a
// legitimate request looks alike, that the legitimate one still works).
type attack struct {
	name  string
	issue string
	run   func(t *testing.T, e *attackEnv)
}

// TestAttackSuite tries every attack of issue 14 (and those the earlier security issues
// named) against real bokeh-server and ws-worker processes. README "Security" lists them.
func TestAttackSuite(t *testing.T) {
	e := newAttackEnv(t)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) { a.run(t, e) })
	}
}

var attacks = []attack{
	// Trusted proxies.
	{"login throttle bypass by rotating X-Forwarded-For", "#14", func(t *testing.T, e *attackEnv) {
		throttleBypass(t, e, "rot-xff", func(i int) map[string]string {
			return map[string]string{"X-Forwarded-For": fmt.Sprintf("10.9.%d.%d", i/250, i%250+1)}
		})
	}},
	{"login throttle bypass by rotating X-Real-IP", "#14", func(t *testing.T, e *attackEnv) {
		throttleBypass(t, e, "rot-xri", func(i int) map[string]string {
			return map[string]string{"X-Real-IP": fmt.Sprintf("10.8.%d.%d", i/250, i%250+1)}
		})
	}},
	{"exhausting a victim's login throttle with a forged X-Forwarded-For", "#14", func(t *testing.T, e *attackEnv) {
		register(t, e.multi, "victim1", "victim-pw")
		for range 20 { // from 127.0.0.2, claiming to be the victim's 127.0.0.3
			e.login(t, e.multi, "victim1", "guess", "127.0.0.2", map[string]string{"X-Forwarded-For": "127.0.0.3"})
		}
		if r := e.login(t, e.multi, "victim1", "victim-pw", "127.0.0.3", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"status":true`) {
			t.Errorf("the victim's own login was throttled by the attacker's: %d %s", r.Status, r.Body)
		}
	}},
	{"forged client address in the access log", "#14", func(t *testing.T, e *attackEnv) {
		marker := uuid.NewString()
		e.do(t, call{url: e.multi.Root + "bokeh/objinfo/" + marker + "/x",
			header: map[string]string{"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.67"}})
		line := accessLogLine(t, e.multi, marker)
		if !strings.Contains(line, "remote=127.0.0.1") || strings.Contains(line, "203.0.113") {
			t.Errorf("access log believes forged headers: %s", line)
		}
		// Behind a trusted proxy the forwarded address is the client's.
		e.do(t, call{url: e.proxied.Root + "bokeh/objinfo/" + marker + "/x", header: map[string]string{"X-Forwarded-For": "203.0.113.68"}})
		if line := accessLogLine(t, e.proxied, marker); !strings.Contains(line, "remote=203.0.113.68") {
			t.Errorf("behind a trusted proxy: %s", line)
		}
	}},
	{"X-Forwarded-Proto from an untrusted peer sets the Secure cookie flag", "#14", func(t *testing.T, e *attackEnv) {
		register(t, e.multi, "proto1", "pw1")
		register(t, e.proxied, "proto1", "pw1")
		https := map[string]string{"X-Forwarded-Proto": "https"}
		r := e.login(t, e.multi, "proto1", "pw1", "", https)
		if ck := r.Header.Get("Set-Cookie"); ck == "" || strings.Contains(ck, "Secure") {
			t.Errorf("untrusted X-Forwarded-Proto: Set-Cookie %q", ck)
		}
		if ck := e.login(t, e.proxied, "proto1", "pw1", "", https).Header.Get("Set-Cookie"); !strings.Contains(ck, "Secure") {
			t.Errorf("trusted proxy's X-Forwarded-Proto: https: Set-Cookie %q, want Secure", ck)
		}
	}},

	// Drive-by access (single-user, the default).
	{"another site reads userinfo", "#14", func(t *testing.T, e *attackEnv) {
		r := e.do(t, call{url: e.single.Root + "bokeh/userinfo/", header: fromSite(evilOrigin)})
		denied(t, "GET userinfo", r, http.StatusForbidden)
		if strings.Contains(string(r.Body), "victim") {
			t.Errorf("the refusal shows the document list: %s", r.Body)
		}
	}},
	{"another site reads an unpublished document", "#14", func(t *testing.T, e *attackEnv) {
		for _, rel := range []string{"bokeh/objinfo/" + e.victimDoc + "/" + e.victim.Figure.ID, "bokeh/bb/" + e.victimDoc + "/",
			"bokeh/bokehinfo/" + e.victimDoc + "/", "bokeh/doc/" + e.victimDoc + "/", "bokeh/getdocapikey/" + e.victimDoc,
			"bokeh/bb/" + e.victimDoc + "/ColumnDataSource/" + e.victim.Source.ID + "/"} {
			denied(t, "GET "+rel, e.do(t, call{url: e.single.Root + rel, header: fromSite(evilOrigin)}), http.StatusForbidden)
			denied(t, "GET "+rel+" from a sandboxed frame", e.do(t, call{url: e.single.Root + rel, header: map[string]string{"Origin": "null"}}), http.StatusForbidden)
			// A <script>/<img> load carries no Origin; the browser still says cross-site.
			denied(t, "no-cors GET "+rel, e.do(t, call{url: e.single.Root + rel,
				header: map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/page"}}), http.StatusForbidden)
		}
		// A published document stays readable by any embedder.
		r := e.do(t, call{url: e.single.Root + "bokeh/objinfo/" + e.publishedID + "/" + e.published.Figure.ID, header: fromSite(evilOrigin)})
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("published document from another site: %d, allow-origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}},
	{"another site writes with text/plain and form posts", "#14", func(t *testing.T, e *attackEnv) {
		before := len(e.owner.Pull(t))
		upd := string(apitest.SourceUpdate(e.victimDoc, e.victim.Source, plotPoints, 7))
		for _, c := range []call{
			{method: "POST", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/bulkupsert", body: upd,
				header: fromSite(evilOrigin, "Content-Type", "text/plain")},
			{method: "POST", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/bulkupsert",
				body: `[{"type": "Range1d", "attributes": {"id": "planted"}}]`, header: fromSite(evilOrigin, "Content-Type", "application/x-www-form-urlencoded")},
			{method: "PUT", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/Range1d/planted2/", body: `{"start": 1}`,
				header: fromSite(evilOrigin, "Content-Type", "text/plain")},
			{method: "PATCH", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/Range1d/planted3/", body: `{"start": 1}`, header: fromSite(evilOrigin)},
			{method: "POST", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/Range1d/", body: `{"id": "planted4"}`, header: fromSite(evilOrigin)},
			{method: "POST", url: e.single.Root + "bokeh/doc/", body: "title=planted-doc",
				header: fromSite(evilOrigin, "Content-Type", "application/x-www-form-urlencoded")},
			{method: "POST", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/gc", header: fromSite(evilOrigin)},
			{method: "POST", url: e.single.Base + "/bokeh/" + e.victimDoc + "/publish", header: fromSite(evilOrigin)},
			{method: "DELETE", url: e.single.Root + "bokeh/doc/" + e.victimDoc + "/", header: fromSite(evilOrigin)},
			{method: "DELETE", url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/ColumnDataSource/" + e.victim.Source.ID + "/", header: fromSite(evilOrigin)},
		} {
			r := e.do(t, c)
			if r.Status < 400 {
				t.Errorf("%s %s from another site: %d", c.method, c.url, r.Status)
			}
			denied(t, c.method+" "+c.url, r, r.Status)
		}
		if after := len(e.owner.Pull(t)); after != before {
			t.Errorf("cross-site writes changed the document: %d models, were %d", after, before)
		}
		titles := fmt.Sprint(e.owner.UserInfo(t).Docs)
		if strings.Contains(titles, "planted-doc") || !strings.Contains(titles, "victim") {
			t.Errorf("cross-site writes changed the document list: %s", titles)
		}
		if r := e.do(t, call{url: e.single.Root + "bokeh/objinfo/" + e.victimDoc + "/" + e.victim.Figure.ID, header: fromSite(evilOrigin)}); r.Status != http.StatusForbidden {
			t.Errorf("the document became public: %d", r.Status)
		}
	}},
	{"DNS rebinding: Host and Origin of another site", "#14", func(t *testing.T, e *attackEnv) {
		rebound := map[string]string{"Origin": "http://" + evilSite + ":" + fmt.Sprint(e.single.Port)}
		denied(t, "userinfo", e.do(t, call{url: e.single.Root + "bokeh/userinfo/", host: evilSite + ":" + fmt.Sprint(e.single.Port), header: rebound}), http.StatusForbidden)
		denied(t, "bb", e.do(t, call{url: e.single.Root + "bokeh/bb/" + e.victimDoc + "/", host: evilSite}), http.StatusForbidden)
		register(t, e.multi, "rebind1", "pw")
		form := url.Values{"username": {"rebind1"}, "password": {"pw"}, "api": {"true"}}
		r := e.do(t, call{method: "POST", url: e.multi.Root + "bokeh/login", body: form.Encode(), host: evilSite,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + evilSite}})
		denied(t, "login", r, http.StatusForbidden)
		if r.Header.Get("Set-Cookie") != "" {
			t.Errorf("rebound login set a cookie: %s", r.Header.Get("Set-Cookie"))
		}
		// Probes and scrapers address the API by a service name; a rebound page may not.
		if r := e.do(t, call{url: e.single.Base + "/metrics", host: "api-service:5006"}); r.Status != http.StatusOK {
			t.Errorf("/metrics by a service name: %d", r.Status)
		}
		denied(t, "/metrics from a rebound page", e.do(t, call{url: e.single.Base + "/metrics", host: evilSite,
			header: map[string]string{"Sec-Fetch-Site": "same-origin"}}), http.StatusForbidden)
		// Names the server does answer to.
		for _, host := range []string{"localhost", "127.0.0.1", "[::1]", "app.localhost"} {
			if r := e.do(t, call{url: e.single.Root + "bokeh/ping", host: host + ":" + fmt.Sprint(e.single.Port)}); r.Status != http.StatusOK {
				t.Errorf("Host %s: %d", host, r.Status)
			}
		}
	}},

	// Revocable sessions.
	{"session cookie replayed after logout", "#14", func(t *testing.T, e *attackEnv) {
		c := register(t, e.multi, "replay1", "pw")
		stolen := c.Cookies()
		if r := c.Browse(t, "bokeh/logout", "same-origin"); r.Status != http.StatusOK {
			t.Fatalf("logout: %d", r.Status)
		}
		r := e.do(t, call{url: e.multi.Root + "bokeh/userinfo/", cookies: stolen})
		denied(t, "userinfo with the cookie of a logged-out session", r, http.StatusUnauthorized)
		if r := e.do(t, call{url: e.multi.Root + "bokeh/", cookies: stolen}); r.Status != http.StatusFound {
			t.Errorf("index with the cookie of a logged-out session: %d, want 302 to login", r.Status)
		}
	}},

	// State changes through GET.
	{"login CSRF through GET loginfromapikey", "#14", func(t *testing.T, e *attackEnv) {
		u := e.multi.Root + "bokeh/loginfromapikey?username=bob&userapikey=" + e.bob.UserAPIKey
		for name, h := range map[string]map[string]string{
			"a cross-site link":                    {"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"},
			"another site's page on the same host": {"Sec-Fetch-Site": "same-site"},
			"an old browser sending nothing":       nil,
		} {
			r := e.do(t, call{url: u, header: h})
			denied(t, name, r, http.StatusForbidden)
			if strings.Contains(r.Header.Get("Set-Cookie"), "session=") {
				t.Errorf("%s: logged the browser in", name)
			}
		}
		// browser_login() opens the address: the browser says it was not a page's doing.
		if r := e.do(t, call{url: u, header: map[string]string{"Sec-Fetch-Site": "none"}}); r.Status != http.StatusFound ||
			!strings.Contains(r.Header.Get("Set-Cookie"), "session=") {
			t.Errorf("browser_login: %d %v", r.Status, r.Header)
		}
	}},
	{"logout through a cross-site GET", "#14", func(t *testing.T, e *attackEnv) {
		c := register(t, e.multi, "logout1", "pw")
		r := e.do(t, call{url: e.multi.Root + "bokeh/logout", cookies: c.Cookies(), header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
		denied(t, "cross-site logout", r, http.StatusForbidden)
		if r := e.do(t, call{url: e.multi.Root + "bokeh/userinfo/", cookies: c.Cookies()}); r.Status != http.StatusOK {
			t.Errorf("the session ended anyway: %d", r.Status)
		}
	}},
	{"rungc through a cross-site GET", "#14", func(t *testing.T, e *attackEnv) {
		c := apitest.NewPyClient(e.single.Root)
		c.UseDoc(t, "gc-target")
		ctx, _ := c.LoadDocument(t)
		c.Push(t, []byte(`[{"type": "Range1d", "attributes": {"id": "orphan-kept"}}]`))
		for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, nil} { // a link; an <img> of an old browser
			denied(t, "GET rungc", e.do(t, call{url: e.single.Root + "bokeh/bb/" + c.DocID + "/rungc", header: h}), http.StatusForbidden)
		}
		// The orphan is still stored: once referenced it is part of the document.
		c.Push(t, []byte(fmt.Sprintf(`[{"type": "PlotContext", "attributes": {"id": %q, "children": [{"type": "Range1d", "id": "orphan-kept"}]}}]`, ctx.ID)))
		if !strings.Contains(fmt.Sprint(c.Pull(t)), "orphan-kept") {
			t.Error("a refused rungc deleted the unreachable model")
		}
		// The Python client's headers (not that it calls rungc) pass.
		if r := c.Do(t, "GET", "bokeh/bb/"+c.DocID+"/rungc", nil, false); r.Status != http.StatusOK {
			t.Errorf("rungc with the API key headers: %d", r.Status)
		}
	}},
	{"find-or-create a document through a cross-site GET", "#14", func(t *testing.T, e *attackEnv) {
		for _, h := range []map[string]string{fromSite(evilOrigin), {"Sec-Fetch-Site": "cross-site"}, nil} {
			denied(t, "GET doc?title=", e.do(t, call{url: e.single.Root + "bokeh/doc/?title=drive-by-doc", header: h}), http.StatusForbidden)
		}
		if titles := fmt.Sprint(e.owner.UserInfo(t).Docs); strings.Contains(titles, "drive-by-doc") {
			t.Errorf("a document was created: %s", titles)
		}
	}},

	// Bounded memory and time.
	{"66 MB chunked body", "#14", func(t *testing.T, e *attackEnv) {
		pid := e.mem.Pid()
		before := vmStat(t, pid, "VmRSS")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := apitest.NewPyClient(e.mem.Root)
		c.UseDoc(t, "big")
		req, _ := http.NewRequestWithContext(ctx, "POST", e.mem.Root+"bokeh/bb/"+c.DocID+"/bulkupsert", chunkedBody(ctx, 66<<20))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("66 MB body: %d, want 413", resp.StatusCode)
			}
		} // else: the server closed the connection after refusing the body
		peak := vmStat(t, pid, "VmHWM")
		t.Logf("API RSS %d MB before, peak %d MB with a 66 MB chunked body (limit 64 MB)", before>>10, peak>>10)
		if rise := peak - before; rise > 84<<10 { // 64 MB accepted, then refused; 260 MB before issue 14
			t.Errorf("a refused 66 MB body raised the API's peak RSS by %d MB (limit 64 MB)", rise>>10)
		}
	}},
	{"slow headers and slow bodies hold connections", "#14", func(t *testing.T, e *attackEnv) {
		worker := fmt.Sprintf("127.0.0.1:%d", e.single.WSPort)
		multiLogin := "POST /bokeh/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nusername=a"
		cases := map[string][2]string{
			"API, slow headers":                {hostPort(e.single), "GET /bokeh/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "},
			"API, slow body (authenticated)":   {hostPort(e.single), "POST /bokeh/bb/" + e.victimDoc + "/bulkupsert HTTP/1.1\r\nHost: 127.0.0.1\r\nBOKEHUSER: defaultuser\r\nBOKEHUSER-API-KEY: nokey\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{\"type\""},
			"API, slow chunked body":           {hostPort(e.single), "POST /bokeh/bb/" + e.victimDoc + "/bulkupsert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{\"t\r\n"},
			"API, slow body (anonymous login)": {hostPort(e.multi), multiLogin},
			"worker, slow headers":             {worker, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "},
			"worker, slow body":                {worker, "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nab"},
		}
		var wg sync.WaitGroup
		for name, c := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn := rawConn(t, c[0], c[1])
				t.Logf("%s: cut (answer before closing: %q)", name, waitCut(t, name, conn))
			}()
		}
		wg.Wait()
	}},
	{"anonymous scratch copies of a published document fill memory", "#14", func(t *testing.T, e *attackEnv) {
		data := `[` + strings.Repeat("12345678,", 1<<20/9) + `0]`
		accepted, refused := 0, ""
		var first string
		for i := 0; i < 40 && refused == ""; i++ {
			tmp := newTemp()
			body := fmt.Sprintf(`[{"type": "ColumnDataSource", "attributes": {"id": %q, "data": {"x": %s}}}]`, e.published.Source.ID, data)
			r := e.do(t, call{method: "POST", url: e.single.Root + "bokeh/bb/" + e.publishedID + "/bulkupsert", body: body, from: "127.0.0.4",
				header: map[string]string{"Content-Type": "application/json", "temporary-" + e.publishedID: tmp}})
			switch r.Status {
			case http.StatusOK:
				accepted++
				if first == "" {
					first = tmp
				}
			case http.StatusTooManyRequests:
				refused = string(r.Body)
			default:
				t.Fatalf("scratch write %d: %d %.200s", i, r.Status, r.Body)
			}
		}
		t.Logf("%d scratch copies of 1 MB accepted, then: %s", accepted, refused)
		if refused == "" || !strings.Contains(refused, "scratch copy") || accepted > 32 {
			t.Fatalf("40 scratch copies of 1 MB from one viewer: %d accepted, refusal %q", accepted, refused)
		}
		// Nothing accepted is lost: the first copy still reads back.
		r := e.do(t, call{url: e.single.Root + "bokeh/bb/" + e.publishedID + "/ColumnDataSource/" + e.published.Source.ID + "/",
			header: map[string]string{"temporary-" + e.publishedID: first}})
		if r.Status != http.StatusOK || len(r.Body) < 1<<20 {
			t.Errorf("the first scratch copy after the refusal: %d, %d bytes", r.Status, len(r.Body))
		}
		// Another viewer is not blocked by this one's quota.
		r = e.do(t, call{method: "PATCH", url: e.single.Root + "bokeh/bb/" + e.publishedID + "/ColumnDataSource/" + e.published.Source.ID + "/",
			body: `{"selected": [1]}`, header: map[string]string{"temporary-" + e.publishedID: newTemp()}})
		if r.Status != http.StatusOK {
			t.Errorf("another viewer's scratch write: %d %.200s", r.Status, r.Body)
		}
	}},

	// The smaller items.
	{"static file through a symbolic link out of the static dir", "#14", func(t *testing.T, e *attackEnv) {
		for _, rel := range []string{"/static/passwd", "/static/etc/passwd", e.single.Opts.Prefix + "/bokeh/static/passwd"} {
			r := e.do(t, call{url: e.single.Base + rel})
			if r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "root:") {
				t.Errorf("GET %s: %d %.100s", rel, r.Status, r.Body)
			}
		}
		if r := e.do(t, call{url: e.single.Base + "/static/ok.txt"}); r.Status != http.StatusOK {
			t.Errorf("a real static file: %d", r.Status)
		}
	}},
	{"NUL in a static path", "#14", func(t *testing.T, e *attackEnv) {
		for _, rel := range []string{"/static/%00", "/static/ok.txt%00.js", "/bokehjs/static/js/%00"} {
			if r := e.do(t, call{url: e.single.Base + rel}); r.Status != http.StatusBadRequest {
				t.Errorf("GET %s: %d, want 400", rel, r.Status)
			}
		}
	}},
	{"guessable temporary ids", "#14", func(t *testing.T, e *attackEnv) {
		for _, tmp := range []string{"temporary-A", "temporary-0123456789abcdef", "temporary-" + strings.Repeat("F", 31)} {
			r := e.do(t, call{url: e.single.Root + "bokeh/objinfo/" + e.publishedID + "/" + e.published.Figure.ID,
				header: map[string]string{"temporary-" + e.publishedID: tmp}})
			if r.Status != http.StatusBadRequest {
				t.Errorf("temporary id %s: %d, want 400", tmp, r.Status)
			}
			ws := cluster.Dial(t, cluster.WSURL(t, e.single.Root), true)
			if reply := ws.Subscribe(t, "bokehplot:"+tmp, nil); !strings.Contains(reply, `"error"`) {
				t.Errorf("subscribe to %s: %s", tmp, reply)
			}
			ws.Close()
		}
	}},
	{"the title of another user's private document on its object page", "#14", func(t *testing.T, e *attackEnv) {
		bob := apitest.NewPyClient(e.multi.Root)
		bob.Login(t, "bob", "bob-pw")
		page := e.do(t, call{url: e.multi.Root + "bokeh/doc/" + e.alicePrivID + "/" + e.alicePlot.Figure.ID, cookies: bob.Cookies()})
		if page.Status != http.StatusOK || strings.Contains(string(page.Body), secretTitle) {
			t.Errorf("bob's view of alice's private object page: %d, title shown: %v", page.Status, strings.Contains(string(page.Body), secretTitle))
		}
		own := e.do(t, call{url: e.multi.Root + "bokeh/doc/" + e.alicePrivID + "/" + e.alicePlot.Figure.ID, cookies: e.alice.Cookies()})
		if !strings.Contains(string(own.Body), secretTitle) {
			t.Errorf("alice's own object page lacks its title: %d", own.Status)
		}
	}},
	{"watching another user's document list (bokehuser topic)", "#14", func(t *testing.T, e *attackEnv) {
		ws := cluster.Dial(t, cluster.WSURL(t, e.multi.Root), true)
		defer ws.Close()
		str := func(s string) *string { return &s }
		for name, auth := range map[string]*string{"no credentials": nil, "bob's key": str(e.bob.UserAPIKey), "nokey": str("nokey"), "a forged token": str("x.1.y")} {
			if reply := ws.Subscribe(t, "bokehuser:alice", auth); !strings.Contains(reply, `"error"`) {
				t.Errorf("%s: %s", name, reply)
			}
		}
		ws.MustSubscribe(t, "bokehuser:alice", e.alice.UserAPIKey)
	}},

	// Named by earlier issues (#2, #3, #7).
	{"another user's document", "#7", func(t *testing.T, e *attackEnv) {
		bob := e.bob
		for _, rel := range []string{"bokeh/bb/" + e.alicePrivID + "/", "bokeh/objinfo/" + e.alicePrivID + "/" + e.alicePlot.Figure.ID, "bokeh/getdocapikey/" + e.alicePrivID} {
			if r := bob.Do(t, "GET", rel, nil, true); r.Status != http.StatusUnauthorized {
				t.Errorf("bob GET %s: %d, want 401", rel, r.Status)
			}
		}
		if r := bob.Do(t, "POST", "bokeh/bb/"+e.alicePrivID+"/bulkupsert", []byte(`[{"type": "Range1d", "attributes": {"id": "x"}}]`), true); r.Status != http.StatusUnauthorized {
			t.Errorf("bob writes alice's document: %d", r.Status)
		}
	}},
	{"a temporary id naming another document", "#2", func(t *testing.T, e *attackEnv) {
		r := e.do(t, call{method: "POST", url: e.single.Root + "bokeh/bb/" + e.publishedID + "/bulkupsert",
			body:   `[{"type": "PlotContext", "attributes": {"id": "injected"}}]`,
			header: map[string]string{"Content-Type": "application/json", "temporary-" + e.publishedID: e.victimDoc}})
		if r.Status != http.StatusBadRequest {
			t.Errorf("temporary id = another docid: %d", r.Status)
		}
		if strings.Contains(fmt.Sprint(e.owner.Pull(t)), "injected") {
			t.Error("the write landed in the other document")
		}
	}},
	{"the single-user key nokey on a multi-user server", "#2", func(t *testing.T, e *attackEnv) {
		r := e.do(t, call{url: e.multi.Root + "bokeh/userinfo/", header: map[string]string{"BOKEHUSER": "defaultuser", "BOKEHUSER-API-KEY": "nokey"}})
		denied(t, "nokey", r, http.StatusUnauthorized)
	}},
	{"websocket subscription with another document's key", "#3", func(t *testing.T, e *attackEnv) {
		ws := cluster.Dial(t, cluster.WSURL(t, e.multi.Root), true)
		defer ws.Close()
		key := e.bob.APIKey
		if reply := ws.Subscribe(t, "bokehplot:"+e.alicePrivID, &key); !strings.Contains(reply, `"error"`) {
			t.Errorf("subscribe with bob's key: %s", reply)
		}
	}},
	{"markup in a document title", "#7", func(t *testing.T, e *attackEnv) {
		c := apitest.NewPyClient(e.single.Root)
		c.UseDoc(t, `<img src=x onerror=alert(1)>`)
		r := e.do(t, call{url: e.single.Root + "bokeh/doc/" + url.PathEscape(`<img src=x onerror=alert(1)>`) + "/show"})
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), "<img src=x") {
			t.Errorf("show page: %d, markup unescaped: %v", r.Status, strings.Contains(string(r.Body), "<img src=x"))
		}
	}},
	{"path traversal on static routes", "#7", func(t *testing.T, e *attackEnv) {
		for _, rel := range []string{"/static/..%2f..%2f..%2fetc%2fpasswd", "/static/../../../etc/passwd", "/bokehjs/static/..%2f..%2f..%2f..%2fetc%2fpasswd"} {
			if r := e.do(t, call{url: e.single.Base + rel}); r.Status == http.StatusOK || strings.Contains(string(r.Body), "root:") {
				t.Errorf("GET %s: %d", rel, r.Status)
			}
		}
	}},
	{"oversized and deeply nested bodies", "#7", func(t *testing.T, e *attackEnv) {
		conn := rawConn(t, hostPort(e.single), "POST /bokeh/bb/"+e.victimDoc+"/bulkupsert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000000\r\n\r\n")
		if line := waitCut(t, "oversized", conn); !strings.Contains(line, "413") {
			t.Errorf("a 70 MB body: %q, want 413", line)
		}
		deep := `[{"type": "Range1d", "attributes": {"id": "d", "x": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}]`
		if r := e.owner.Push(t, []byte(deep)); r.Status != http.StatusBadRequest {
			t.Errorf("nesting 5000 deep: %d", r.Status)
		}
	}},
	{"login form without its CSRF token", "#7", func(t *testing.T, e *attackEnv) {
		form := url.Values{"username": {"bob"}, "password": {"bob-pw"}}
		r := e.do(t, call{method: "POST", url: e.multi.Root + "bokeh/login", body: form.Encode(),
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}})
		denied(t, "form login without a token", r, http.StatusForbidden)
	}},
	{"login redirecting to another site (next)", "#7", func(t *testing.T, e *attackEnv) {
		b := apitest.NewPyClient(e.multi.Root)
		b.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		page := b.Browse(t, "bokeh/login?next="+url.QueryEscape("https://evil.example/steal"), "none")
		m := csrfField.FindSubmatch(page.Body)
		if m == nil {
			t.Fatalf("login page without a token: %.300s", page.Body)
		}
		form := url.Values{"username": {"bob"}, "password": {"bob-pw"}, "csrf_token": {string(m[1])}, "next": {"https://evil.example/steal"}}
		r := b.PostForm(t, "bokeh/login", form, map[string]string{"Origin": e.multi.Base, "Sec-Fetch-Site": "same-origin"})
		if loc := r.Header.Get("Location"); r.Status != http.StatusFound || strings.Contains(loc, "evil") {
			t.Errorf("login with next=another site: %d to %q", r.Status, loc)
		}
	}},
}

// throttleBypass tries 45 wrong passwords past the throttle with rotating forged client
// headers, then the right one: every try must stay throttled.
func throttleBypass(t *testing.T, e *attackEnv, user string, forge func(int) map[string]string) {
	t.Helper()
	register(t, e.multi, user, "right-pw")
	from := "127.0.0.6"
	for range 10 {
		e.login(t, e.multi, user, "wrong", from, nil)
	}
	through := 0
	for i := range 45 {
		if r := e.login(t, e.multi, user, "wrong", from, forge(i)); r.Status != http.StatusTooManyRequests {
			through++
		}
	}
	if through > 0 {
		t.Errorf("%d of 45 attempts with forged client headers got past the throttle", through)
	}
	if r := e.login(t, e.multi, user, "right-pw", from, forge(99)); r.Status != http.StatusTooManyRequests {
		t.Errorf("the right password, still throttled, was answered %d %s", r.Status, r.Body)
	}
}

// accessLogLine returns the access-log line of the request whose path holds marker (written just
// after the answer, so it is waited for a little).
func accessLogLine(t *testing.T, s *cluster.Server, marker string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(s.Log(), "\n") {
			if strings.Contains(line, marker) && strings.Contains(line, "msg=http") {
				return line
			}
		}
	}
	t.Fatalf("no access-log line for %s in:\n%s", marker, lastLines(s.Log(), 20))
	return ""
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([0-9a-f]+)"`)
