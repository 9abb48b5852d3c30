package apitest

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// MultiUser replays the -m sequences: accounts, sessions, keys, refusals between users and
// publishing (../shared/transcripts/multi-user-*.txt).
func MultiUser(t *testing.T, tg Target) {
	suffix := fmt.Sprint(time.Now().UnixNano())
	alice, bob := NewPyClient(tg.Root), NewPyClient(tg.Root)
	var plot *Plot

	t.Run("RegisterLogin", func(t *testing.T) {
		if r := alice.Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusUnauthorized {
			t.Fatalf("userinfo before login: %d, want 401", r.Status)
		}
		if out := alice.Register(t, "alice"+suffix, "pw-a"); out["status"] != true {
			t.Fatalf("register: %v", out)
		}
		if out := NewPyClient(tg.Root).Register(t, "alice"+suffix, "other"); out["status"] != false || out["error"] != "user already exists" {
			t.Fatalf("second register of the same name: %v", out)
		}
		if out := NewPyClient(tg.Root).Login(t, "alice"+suffix, "wrong"); out["status"] != false {
			t.Fatalf("login with a wrong password: %v", out)
		}
		again := NewPyClient(tg.Root)
		if out := again.Login(t, "alice"+suffix, "pw-a"); out["status"] != true || out["userapikey"] != alice.UserAPIKey {
			t.Fatalf("login: %v", out)
		}
		if u := again.UserInfo(t); u.Username != "alice"+suffix {
			t.Fatalf("userinfo after login: %+v", u)
		}
		if out := bob.Register(t, "bob"+suffix, "pw-b"); out["status"] != true {
			t.Fatalf("register bob: %v", out)
		}
	})

	t.Run("HeadersAuthenticateWithoutCookies", func(t *testing.T) {
		// A script with credentials in ~/.bokeh/config.json sends only the two headers.
		h := NewPyClient(tg.Root)
		h.Username, h.UserAPIKey = alice.Username, alice.UserAPIKey
		if u := h.UserInfo(t); u.Username != alice.Username {
			t.Fatalf("userinfo by headers: %+v", u)
		}
		h.UserAPIKey = "wrong"
		if r := h.Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong user apikey: %d, want 401", r.Status)
		}
	})

	t.Run("OwnDocument", func(t *testing.T) {
		plot = storePlot(t, alice, "shared", 50)
		body := []byte(`{"title": "shared"}`)
		if r := alice.Do(t, "POST", "bokeh/doc/", body, true); r.Status != http.StatusConflict {
			t.Fatalf("duplicate title: %d, want 409", r.Status)
		}
		bob.UseDoc(t, "shared") // the same title under another user is fine
		if bob.DocID == alice.DocID {
			t.Fatal("bob got alice's document")
		}
	})
	if plot == nil {
		t.FailNow()
	}

	t.Run("CrossUserRefused", func(t *testing.T) {
		for _, rel := range []string{"bokeh/getdocapikey/" + alice.DocID, "bokeh/bb/" + alice.DocID + "/",
			"bokeh/bokehinfo/" + alice.DocID + "/", "bokeh/objinfo/" + alice.DocID + "/" + plot.Figure.ID} {
			if r := bob.Do(t, "GET", rel, nil, true); r.Status != http.StatusUnauthorized {
				t.Errorf("bob GET %s: %d, want 401", rel, r.Status)
			}
		}
		r := bob.Do(t, "POST", "bokeh/bb/"+alice.DocID+"/bulkupsert", SourceUpdate(alice.DocID, plot.Source, 5, 9), true)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("bob bulkupsert: %d, want 401", r.Status)
		}
		if r := bob.Do(t, "POST", "bokeh/bb/"+alice.DocID+"/gc", nil, true); r.Status != http.StatusUnauthorized {
			t.Errorf("bob gc: %d, want 401", r.Status)
		}
		if r := bob.Do(t, "POST", "/bokeh/"+alice.DocID+"/publish", nil, true); r.Status != http.StatusUnauthorized {
			t.Errorf("bob publish: %d, want 401", r.Status)
		}
		if r := Get(t, tg.Root+"bokeh/bb/"+alice.DocID+"/", nil); r.Status != http.StatusUnauthorized {
			t.Errorf("anonymous read of an unpublished doc: %d, want 401", r.Status)
		}
	})

	t.Run("DocumentKeys", func(t *testing.T) {
		ro := readonlyKey(t, alice)
		get := func(key string) int {
			return Get(t, tg.Root+"bokeh/bb/"+alice.DocID+"/", map[string]string{"BOKEH-API-KEY": key}).Status
		}
		if s := get("not-the-key"); s != http.StatusUnauthorized {
			t.Errorf("wrong document key: %d, want 401", s)
		}
		if s := get(ro); s != http.StatusOK {
			t.Errorf("read-only key read: %d, want 200", s)
		}
		if s := get(alice.APIKey); s != http.StatusOK {
			t.Errorf("write key read: %d, want 200", s)
		}
		push := func(key string) int {
			h := NewPyClient(tg.Root)
			h.DocID = alice.DocID
			req := SourceUpdate(alice.DocID, plot.Source, 5, 1)
			r := h.doWithKey(t, "POST", "bokeh/bb/"+alice.DocID+"/bulkupsert", req, key)
			return r.Status
		}
		if s := push(ro); s != http.StatusUnauthorized {
			t.Errorf("read-only key write: %d, want 401", s)
		}
		if s := push(alice.APIKey); s != http.StatusOK {
			t.Errorf("write key write: %d, want 200", s)
		}
	})

	t.Run("PublishThenAnonymous", func(t *testing.T) {
		must(t, alice.Publish(t), "publish")
		anon := NewPyClient(tg.Root)
		anon.Username, anon.UserAPIKey = "", ""
		var keys map[string]string
		must(t, anon.Do(t, "GET", "bokeh/getdocapikey/"+alice.DocID, nil, true), "getdocapikey").JSON(t, &keys)
		if keys["readonlyapikey"] == "" || keys["apikey"] != "" {
			t.Errorf("anonymous getdocapikey of a published doc: %v", keys)
		}
		if r := Get(t, tg.Root+"bokeh/bb/"+alice.DocID+"/", nil); r.Status != http.StatusOK {
			t.Errorf("anonymous read of a published doc: %d", r.Status)
		}
		anon.DocID = alice.DocID
		if r := anon.Push(t, SourceUpdate(alice.DocID, plot.Source, 5, 2)); r.Status != http.StatusUnauthorized {
			t.Errorf("anonymous write to a published doc: %d, want 401", r.Status)
		}
		page := Get(t, tg.Root+"bokeh/doc/"+alice.DocID+"/"+plot.Figure.ID+"?public=true", nil)
		if page.Status != http.StatusOK {
			t.Errorf("public page of a published doc: %d", page.Status)
		}
		if r := Get(t, tg.Root+"bokeh/doc/"+bob.DocID+"/x", nil); r.Status != http.StatusFound {
			t.Errorf("anonymous page of an unpublished doc: %d, want 302 to login", r.Status)
		}
		if u := bob.UserInfo(t); len(u.Docs) != 1 {
			t.Errorf("published docs of other users must not be listed: %+v", u)
		}
	})

	t.Run("LoginFromAPIKeyAndLogout", func(t *testing.T) {
		b := NewPyClient(tg.Root)
		b.Username, b.UserAPIKey = "", ""
		// browser_login() opens the URL in a browser: a navigation the user started.
		r := b.Browse(t, "bokeh/loginfromapikey?username="+alice.Username+"&userapikey="+alice.UserAPIKey, "none")
		if r.Status != http.StatusOK { // redirect to the index page, followed
			t.Fatalf("loginfromapikey: %d %.300s", r.Status, r.Body)
		}
		if u := b.UserInfo(t); u.Username != alice.Username {
			t.Fatalf("session from apikey: %+v", u)
		}
		stolen := b.Cookies()
		b.Browse(t, "bokeh/logout", "same-origin") // the pages' logout link
		if r := b.Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusUnauthorized {
			t.Fatalf("userinfo after logout: %d, want 401", r.Status)
		}
		// A copy of the cookie taken before the logout is worth nothing after it.
		replay := NewPyClient(tg.Root)
		replay.Username, replay.UserAPIKey = "", ""
		replay.SetCookies(stolen)
		if r := replay.Do(t, "GET", "bokeh/userinfo/", nil, true); r.Status != http.StatusUnauthorized {
			t.Fatalf("session cookie replayed after logout: %d, want 401", r.Status)
		}
	})

	if tg.Restart != nil {
		t.Run("SurvivesRestart", func(t *testing.T) {
			tg.Restart(t)
			again := NewPyClient(tg.Root)
			if out := again.Login(t, alice.Username, "pw-a"); out["status"] != true || out["userapikey"] != alice.UserAPIKey {
				t.Fatalf("login after restart: %v", out)
			}
			again.UseDoc(t, "shared")
			if again.DocID != alice.DocID || again.APIKey != alice.APIKey {
				t.Fatalf("after restart: doc %s key %s", again.DocID, again.APIKey)
			}
		})
	}
}

// doWithKey sends a Python-style JSON request with a BOKEH-API-KEY document key.
func (c *PyClient) doWithKey(tb testing.TB, method, rel string, body []byte, key string) *Response {
	tb.Helper()
	req, err := http.NewRequest(method, c.Root+rel, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("BOKEH-API-KEY", key)
	return c.send(tb, req)
}
