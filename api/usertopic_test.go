package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/api/workerapi"
)

var userAuthAttr = regexp.MustCompile(`data-user-auth="([^"]*)"`)

// TestUserTopicGrants: workers ask the API who may watch bokehuser:<name>. In multi-user mode
// that takes the user's API key or the token of one of the user's live sessions, which the
// document list page carries; the token dies with its session.
func TestUserTopicGrants(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true, SecretKey: "k"})
	alice := apitest.NewPyClient(a.root)
	alice.Register(t, "alice", "pw")
	bob := apitest.NewPyClient(a.root)
	bob.Register(t, "bob", "pw")
	index := alice.Browse(t, "bokeh/", "none")
	m := userAuthAttr.FindSubmatch(index.Body)
	if m == nil || len(m[1]) < 20 {
		t.Fatalf("alice's document list carries no user-topic token: %.500s", index.Body)
	}
	token := string(m[1])
	ask := func(name, auth, internal string) int {
		h := map[string]string{workerapi.InternalTokenHeader: internal}
		if auth != "" {
			h[workerapi.SubscribeAuthHeader] = auth
		}
		return apitest.Get(t, a.root+workerapi.UserTopicPath+name, h).Status
	}
	good := workerapi.InternalToken("k")
	for _, c := range []struct {
		name, user, auth, internal string
		want                       int
	}{
		{"no credentials", "alice", "", good, http.StatusForbidden},
		{"nokey", "alice", "nokey", good, http.StatusForbidden},
		{"another user's key", "alice", bob.UserAPIKey, good, http.StatusForbidden},
		{"another user's token", "bob", token, good, http.StatusForbidden},
		{"a forged token", "alice", token[:len(token)-2] + "xx", good, http.StatusForbidden},
		{"unknown user", "carol", alice.UserAPIKey, good, http.StatusForbidden},
		{"the user's key", "alice", alice.UserAPIKey, good, http.StatusNoContent},
		{"the page's token", "alice", token, good, http.StatusNoContent},
		{"a wrong internal token", "alice", alice.UserAPIKey, "guess", http.StatusUnauthorized},
	} {
		if got := ask(c.user, c.auth, c.internal); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	alice.Browse(t, "bokeh/logout", "same-origin")
	if got := ask("alice", token, good); got != http.StatusForbidden {
		t.Errorf("the token after logout: %d, want 403", got)
	}

	single := newTestAPI(t, api.Config{SecretKey: "k"})
	if got := apitest.Get(t, single.root+workerapi.UserTopicPath+"defaultuser", map[string]string{workerapi.InternalTokenHeader: good}).Status; got != http.StatusNoContent {
		t.Errorf("single-user mode: %d, want 204 (open)", got)
	}
	if page := apitest.NewPyClient(single.root).Browse(t, "bokeh/", "none"); userAuthAttr.Match(page.Body) {
		t.Error("a single-user page carries a user-topic token")
	}
}

// TestSessionsPerUserAreBounded: the oldest of more than 32 logins ends; the others live.
func TestSessionsPerUserAreBounded(t *testing.T) {
	// Logins from 33 addresses (behind a trusted proxy), so the throttle lets them through.
	local, _ := api.ParseCIDRs("127.0.0.1")
	a := newTestAPI(t, api.Config{MultiUser: true, TrustedProxies: local})
	owner := apitest.NewPyClient(a.root)
	owner.Register(t, "many", "pw")
	var clients []*apitest.PyClient
	for i := range 33 {
		// browser_login(): no password to hash, so the test stays quick under -race.
		c := apitest.NewPyClient(a.root)
		c.Username, c.UserAPIKey = "", "" // identity by cookie only
		req, _ := http.NewRequest("GET", a.root+"bokeh/loginfromapikey?username=many&userapikey="+url.QueryEscape(owner.UserAPIKey), nil)
		req.Header.Set("Sec-Fetch-Site", "none")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1))
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(c.Cookies()) == 0 {
			t.Fatalf("login %d: %d", i, resp.StatusCode)
		}
		clients = append(clients, c)
	}
	if r := clients[0].Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusUnauthorized {
		t.Errorf("the oldest of 33 sessions: %d, want 401", r.Status)
	}
	for i, c := range clients[1:] {
		if r := c.Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusOK {
			t.Errorf("session %d: %d", i+1, r.Status)
		}
	}
}
