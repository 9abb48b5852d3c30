package api_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/api"
	"github.com/bokeh-go/bokeh-server/api/apitest"
)

// formBrowser is a browser session: cookies kept, redirects not followed.
func formBrowser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, origin string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([0-9a-f]+)"`)

func TestFormsNeedCSRFToken(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	b := formBrowser(t)
	form := url.Values{"username": {"dora"}, "password": {"pw"}, "password_confirm": {"pw"}}
	if resp, _ := postForm(t, b, a.root+"bokeh/register", form, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form register without a token: %d, want 403", resp.StatusCode)
	}
	page, err := b.Get(a.root + "bokeh/register")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	m := csrfInput.FindSubmatch(body)
	if m == nil {
		t.Fatalf("register page has no token: %s", body)
	}
	form.Set("csrf_token", string(m[1]))
	resp, _ := postForm(t, b, a.root+"bokeh/register", form, a.http.URL)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/bokeh/" {
		t.Fatalf("form register with the token: %d %v", resp.StatusCode, resp.Header)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" && (!ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode) {
			t.Errorf("session cookie flags: %+v", ck)
		}
	}
}

func TestCrossSiteAccountRequestsRefused(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	apitest.NewPyClient(a.root).Register(t, "erin", "pw")
	form := url.Values{"username": {"erin"}, "password": {"pw"}, "api": {"true"}}
	if resp, _ := postForm(t, formBrowser(t), a.root+"bokeh/login", form, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site API login: %d, want 403", resp.StatusCode)
	}
	if resp, body := postForm(t, formBrowser(t), a.root+"bokeh/login", form, ""); resp.StatusCode != 200 || !strings.Contains(body, `"status":true`) {
		t.Fatalf("Python-style API login: %d %s", resp.StatusCode, body)
	}
}

func TestLoginThrottled(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	apitest.NewPyClient(a.root).Register(t, "fred", "pw")
	form := url.Values{"username": {"fred"}, "password": {"wrong"}, "api": {"true"}}
	throttled := false
	for i := 0; i < 30 && !throttled; i++ {
		resp, _ := postForm(t, formBrowser(t), a.root+"bokeh/login", form, "")
		throttled = resp.StatusCode == http.StatusTooManyRequests
		if throttled && resp.Header.Get("Retry-After") != "6" {
			t.Errorf("throttled login: Retry-After %q, want 6 (one attempt per 6 s)", resp.Header.Get("Retry-After"))
		}
	}
	if !throttled {
		t.Fatal("30 wrong passwords in a row were never throttled")
	}
	other := url.Values{"username": {"someone-else"}, "password": {"x"}, "api": {"true"}}
	if resp, _ := postForm(t, formBrowser(t), a.root+"bokeh/login", other, ""); resp.StatusCode != 200 {
		t.Fatalf("throttling one account blocked another: %d", resp.StatusCode)
	}
}

func TestLoginReturnsToNextOnlyLocally(t *testing.T) {
	a := newTestAPI(t, api.Config{MultiUser: true})
	apitest.NewPyClient(a.root).Register(t, "gina", "pw")
	for next, want := range map[string]string{
		a.http.URL + "/bokeh/doc/d1/o1?public=true": "/bokeh/doc/d1/o1?public=true",
		"/bokeh/doc/d2/o2":                          "/bokeh/doc/d2/o2",
		"http://evil.example/steal":                 "/bokeh/",
		"//evil.example/steal":                      "/bokeh/",
	} {
		b := formBrowser(t)
		page, err := b.Get(a.root + "bokeh/login?next=" + url.QueryEscape(next))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		m := csrfInput.FindSubmatch(body)
		form := url.Values{"username": {"gina"}, "password": {"pw"}, "csrf_token": {string(m[1])}, "next": {next}}
		resp, _ := postForm(t, b, a.root+"bokeh/login", form, "")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
			t.Errorf("next=%q: %d to %q, want %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}
