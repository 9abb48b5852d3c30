package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// Bounds of the attack suite's waits; the slow-client attacks wait at most this long for the
// server to cut them (the servers under attack run with --read-timeout 2s).
const (
	cutWait     = 60 * time.Second
	evilOrigin  = "https://evil.example"
	evilSite    = "evil.example"
	secretTitle = "alice-secret-title-7f3a"
)

// attackEnv is the servers under attack and what they hold.
type attackEnv struct {
	single  *cluster.Server // single-user (the default), --read-timeout 2s, a static dir with a trap
	multi   *cluster.Server // multi-user, --read-timeout 2s
	proxied *cluster.Server // multi-user behind a trusted proxy (127.0.0.1)
	mem     *cluster.Server // single-user, only for the memory measurement

	owner       *apitest.PyClient // single: the user's own Python session
	victim      *apitest.Plot     // single: an unpublished document of owner
	victimDoc   string
	published   *apitest.Plot // single: a published document
	publishedID string

	alice, bob  *apitest.PyClient // multi
	alicePlot   *apitest.Plot     // multi: alice's unpublished document titled secretTitle
	alicePrivID string

	mu      sync.Mutex
	clients map[string]*http.Client
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	bin := cluster.Build(t)
	static := t.TempDir()
	if err := os.WriteFile(filepath.Join(static, "ok.txt"), []byte("a static file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(static, "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(static, "etc")); err != nil {
		t.Fatal(err)
	}
	e := &attackEnv{clients: map[string]*http.Client{}}
	var wg sync.WaitGroup
	for _, start := range []func(){
		func() {
			e.single = cluster.StartServer(t, bin, cluster.ServerOptions{Extra: []string{"--read-timeout", "2s", "--static-dir", static}})
		},
		func() {
			e.multi = cluster.StartServer(t, bin, cluster.ServerOptions{MultiUser: true, Extra: []string{"--read-timeout", "2s"}})
		},
		func() {
			e.proxied = cluster.StartServer(t, bin, cluster.ServerOptions{MultiUser: true, Extra: []string{"--trusted-proxies", "127.0.0.1"}})
		},
		func() {
			e.mem = cluster.StartServer(t, bin, cluster.ServerOptions{NoWSStart: true, Extra: []string{"--read-timeout", "2s"}})
		},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); start() }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	e.owner = apitest.NewPyClient(e.single.Root)
	e.victim = storePlot(t, e.owner, "victim")
	e.victimDoc = e.owner.DocID
	pub := apitest.NewPyClient(e.single.Root)
	e.published = storePlot(t, pub, "published")
	e.publishedID = pub.DocID
	if r := pub.Publish(t); r.Status != http.StatusOK {
		t.Fatalf("publish: %d", r.Status)
	}

	e.alice = apitest.NewPyClient(e.multi.Root)
	e.alice.Register(t, "alice", "alice-pw")
	e.alicePlot = storePlot(t, e.alice, secretTitle)
	e.alicePrivID = e.alice.DocID
	e.bob = apitest.NewPyClient(e.multi.Root)
	e.bob.Register(t, "bob", "bob-pw")
	e.bob.UseDoc(t, "bob-doc")
	return e
}

// call is one raw request, the way an attacker's page or program would send it.
type call struct {
	method, url string
	body        string
	header      map[string]string
	host        string // Host header, if not the URL's
	from        string // source address on loopback (127.0.0.x), "" for 127.0.0.1
	cookies     []*http.Cookie
}

func (e *attackEnv) client(from string) *http.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clients[from]; c != nil {
		return c
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c := &http.Client{Timeout: 60 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	e.clients[from] = c
	return c
}

func (e *attackEnv) do(t *testing.T, c call) *apitest.Response {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, c.url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	if c.host != "" {
		req.Host = c.host
	}
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	resp, err := e.client(c.from).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// login posts the Python client's API login (from a source address) and returns the answer.
func (e *attackEnv) login(t *testing.T, s *cluster.Server, user, pw, from string, header map[string]string) *apitest.Response {
	t.Helper()
	form := url.Values{"username": {user}, "password": {pw}, "api": {"true"}}
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return e.do(t, call{method: "POST", url: s.Root + "bokeh/login", body: form.Encode(), header: h, from: from})
}

// register makes an account over the API (from 127.0.0.1).
func register(t *testing.T, s *cluster.Server, user, pw string) *apitest.PyClient {
	t.Helper()
	c := apitest.NewPyClient(s.Root)
	if out := c.Register(t, user, pw); out["status"] != true {
		t.Fatalf("register %s: %v", user, out)
	}
	return c
}

// fromSite are the headers a page of origin sends with a CORS request.
func fromSite(origin string, extra ...string) map[string]string {
	h := map[string]string{"Origin": origin, "Sec-Fetch-Site": "cross-site"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// denied fails unless the answer has the status and no CORS grant for a foreign page.
func denied(t *testing.T, what string, r *apitest.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: %d %.200s, want %d", what, r.Status, r.Body, status)
	}
	if g := r.Header.Get("Access-Control-Allow-Origin"); g == "*" || g == evilOrigin {
		t.Errorf("%s: a page of another site is granted the answer (Access-Control-Allow-Origin %q)", what, g)
	}
}

// rawConn opens a TCP connection and writes head; what the server does next is the test's.
func rawConn(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitCut waits (at most cutWait) for the server to end a stalled request: an answer, or the
// connection closed. It returns the status line seen, "" when closed without one.
func waitCut(t *testing.T, what string, conn net.Conn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(cutWait)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server still holds the stalled request after %v", what, cutWait)
	}
	_, _ = io.Copy(io.Discard, conn) // until the server closes
	return strings.TrimSpace(line)
}

// hostPort is the host:port of a server's root URL.
func hostPort(s *cluster.Server) string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// vmStat reads a field (kB) of /proc/<pid>/status.
func vmStat(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// chunkedBody streams n bytes of a JSON array as a chunked body (no Content-Length).
func chunkedBody(ctx context.Context, n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		chunk := []byte(strings.Repeat("1,", 32<<10))
		_, err := pw.Write([]byte("["))
		for sent := 1; err == nil && sent < n && ctx.Err() == nil; sent += len(chunk) {
			_, err = pw.Write(chunk)
		}
		pw.CloseWithError(err)
	}()
	return pr
}
