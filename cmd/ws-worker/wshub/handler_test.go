package wshub

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEndpoints(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial()
	c.mustSubscribe("bokehuser:x", nil)

	if code, body := get(t, e.srv.URL+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get(t, e.srv.URL+"/stats")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.ConnectionsCurrent != 1 || st.Subscriptions != 1 {
		t.Fatalf("/stats: %d %s %v", code, body, err)
	}
	code, body = get(t, e.srv.URL+"/metrics")
	for _, name := range []string{"bokeh_ws_connections 1", "bokeh_ws_subscriptions 1",
		`bokeh_ws_frames_dropped_total{reason="slow_client"} 0`, "bokeh_ws_unwatched_messages_total 0", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, name) {
			t.Fatalf("/metrics lacks %q:\n%s", name, body)
		}
	}
	if code, _ := get(t, e.srv.URL+"/bokeh/other"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	if code, _ := get(t, e.srv.URL+"/bokeh/sub"); code != 400 {
		t.Fatalf("plain GET of the websocket path: %d, want 400", code)
	}
}

func TestPrefixedPaths(t *testing.T) {
	e := newEnv(t, nil, false)
	srv := httptest.NewServer(e.hub.Handler("/pre/fix"))
	defer srv.Close()
	base := "ws" + strings.TrimPrefix(srv.URL, "http")
	for _, path := range []string{"/pre/fix/bokeh/sub", "/pre/fix/bokeh/sub/"} {
		c := e.dialWith(base+path, nil, true)
		c.mustSubscribe("bokehuser:x", nil)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(base+"/bokeh/sub", nil); err == nil || resp.StatusCode != 404 {
		t.Fatalf("unprefixed path: %v %v", err, resp)
	}
}
