package api

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/bokeh-go/bokeh-server/broker/brokertest"
	"github.com/bokeh-go/bokeh-server/storage"
)

func TestHostPolicy(t *testing.T) {
	h := newHostPolicy("plots.internal", []string{"plots.example.org", "*.corp.example", " Mixed.Example. "})
	for host, want := range map[string]bool{
		"":                       true, // HTTP/1.0, not a browser
		"127.0.0.1:5006":         true,
		"[::1]:5006":             true,
		"192.0.2.10":             true, // a literal cannot be rebound
		"localhost:5006":         true,
		"LOCALHOST.":             true,
		"app.localhost:5006":     true,
		"plots.internal:5006":    true, // the name --ip was given as
		"plots.example.org":      true,
		"a.b.corp.example:8080":  true,
		"mixed.example":          true,
		"evil.example":           false,
		"evil.example:5006":      false,
		"localhost.evil.example": false,
		"corp.example":           false,
		"plots.example.org.evil": false,
	} {
		if got := h.allows(host); got != want {
			t.Errorf("allows(%q) = %v, want %v", host, got, want)
		}
	}
	if !newHostPolicy("", []string{"*"}).allows("anything.example") {
		t.Error(`"*" does not allow any host`)
	}
}

func TestSiteOf(t *testing.T) {
	s, err := New(Config{SecretKey: "k", AllowedOrigins: []string{"https://notebook.example", "http://localhost:8888"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, storage.NewMemory(0), &brokertest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		host   string
		header map[string]string
		want   site
	}{
		{"python client", "127.0.0.1:5006", nil, siteUnknown},
		{"own page, Origin", "127.0.0.1:5006", map[string]string{"Origin": "http://127.0.0.1:5006"}, siteSame},
		{"own page, default port", "plots.example:80", map[string]string{"Origin": "http://plots.example"}, siteSame},
		{"own page behind a TLS proxy", "plots.example", map[string]string{"Origin": "https://plots.example"}, siteSame},
		{"another port of the same name", "plots.example", map[string]string{"Origin": "https://plots.example:8443"}, siteForeign},
		{"own page, Sec-Fetch-Site", "127.0.0.1:5006", map[string]string{"Sec-Fetch-Site": "same-origin"}, siteSame},
		{"typed address", "127.0.0.1:5006", map[string]string{"Sec-Fetch-Site": "none"}, siteSame},
		{"own page, Referer only", "127.0.0.1:5006", map[string]string{"Referer": "http://127.0.0.1:5006/bokeh/"}, siteSame},
		{"allowed origin", "127.0.0.1:5006", map[string]string{"Origin": "HTTPS://Notebook.Example:443"}, siteAllowed},
		{"allowed origin's <script>", "127.0.0.1:5006", map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "http://localhost:8888/notebooks/a.ipynb"}, siteAllowed},
		{"another port", "127.0.0.1:5006", map[string]string{"Origin": "http://127.0.0.1:8000"}, siteForeign},
		{"same host and port behind TLS", "127.0.0.1:5006", map[string]string{"Origin": "https://127.0.0.1:5006"}, siteSame},
		{"other site", "127.0.0.1:5006", map[string]string{"Origin": "https://evil.example"}, siteForeign},
		{"sandboxed frame", "127.0.0.1:5006", map[string]string{"Origin": "null"}, siteForeign},
		{"no-cors from another site", "127.0.0.1:5006", map[string]string{"Sec-Fetch-Site": "cross-site"}, siteForeign},
		{"same site, other origin", "127.0.0.1:5006", map[string]string{"Sec-Fetch-Site": "same-site"}, siteForeign},
		{"old browser, foreign Referer", "127.0.0.1:5006", map[string]string{"Referer": "https://evil.example/x"}, siteForeign},
		{"Origin beats Sec-Fetch-Site", "127.0.0.1:5006", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, siteForeign},
	} {
		r := httptest.NewRequest("GET", "http://"+c.host+"/bokeh/userinfo/", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if got := s.siteOf(r); got != c.want {
			t.Errorf("%s: site %d, want %d", c.name, got, c.want)
		}
	}
}

func TestParseOriginsAndProxies(t *testing.T) {
	if got, err := ParseOrigins(" https://a.example , http://b.example:8080,*"); err != nil || len(got) != 3 {
		t.Errorf("ParseOrigins: %v %v", got, err)
	}
	for _, bad := range []string{"a.example", "https://", "ftp//x"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
	got, err := ParseCIDRs("10.0.0.0/8, 192.0.2.1, ::1, 2001:db8::/32")
	if err != nil || len(got) != 4 || got[1].Bits() != 32 || got[2].Bits() != 128 {
		t.Errorf("ParseCIDRs: %v %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted", bad)
		}
	}
	p := newProxyTrust(got)
	for remote, want := range map[string]string{"10.1.2.3:1": "198.51.100.9", "192.0.2.1:1": "198.51.100.9", "192.0.2.2:1": "192.0.2.2"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "203.0.113.5, 198.51.100.9") // the client forged the first
		r.Header.Set("X-Forwarded-Proto", "https")
		if ip := p.clientIP(r); ip != want {
			t.Errorf("peer %s: client %s, want %s", remote, ip, want)
		}
		if p.secure(r) != (want != "192.0.2.2") {
			t.Errorf("peer %s: secure %v", remote, p.secure(r))
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Real-IP", "198.51.100.7")
	if ip := p.clientIP(r); ip != "198.51.100.7" {
		t.Errorf("X-Real-IP behind a trusted proxy: %s", ip)
	}
}
