package api

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/labstack/echo/v4"
)

// hostPolicy is the Host allow-list that defeats DNS rebinding: a page of evil.example whose
// name is made to resolve to 127.0.0.1 reaches a loopback server as the same origin as the
// page, but its requests still name evil.example in Host. Allowed are IP literals (a literal
// cannot be rebound: a page at it is this server's own), localhost and *.localhost (browsers
// resolve those to loopback themselves), the name --ip was given as, this machine's host
// name, and --allowed-hosts (exact names, "*.example.org" for subdomains, "*" for any).
type hostPolicy struct {
	any      bool
	names    map[string]bool
	suffixes []string
}

func newHostPolicy(listenHost string, allowed []string) *hostPolicy {
	h := &hostPolicy{names: map[string]bool{"localhost": true}}
	if listenHost != "" {
		h.names[normalHost(listenHost)] = true
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		h.names[normalHost(name)] = true
	}
	for _, a := range allowed {
		a = normalHost(a)
		switch {
		case a == "":
		case a == "*":
			h.any = true
		case strings.HasPrefix(a, "*."):
			h.suffixes = append(h.suffixes, a[1:])
		default:
			h.names[a] = true
		}
	}
	return h
}

// normalHost lowercases a host name and drops a trailing dot and IPv6 brackets.
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return h
}

// allows reports whether a Host header (with or without port) names this server.
func (h *hostPolicy) allows(hostport string) bool {
	if h.any || hostport == "" { // HTTP/1.0 without Host: not a browser
		return true
	}
	host := hostport
	if hst, _, err := net.SplitHostPort(hostport); err == nil {
		host = hst
	}
	host = normalHost(host)
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || h.names[host] {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// checkHost refuses requests whose Host is not one of this server's names. Probes, metrics
// and the workers' internal lookups are exempt when no browser sends them (browsers send
// Sec-Fetch-Site on every request, orchestrators and workers never): those address the API
// by a service name, while a rebound page must not read /metrics either.
func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	internal := s.cfg.URLPrefix + "/bokeh/internal/"
	return func(c echo.Context) error {
		r := c.Request()
		switch p := r.URL.Path; {
		case r.Header.Get("Sec-Fetch-Site") != "":
		case p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, internal):
			return next(c)
		}
		if !s.hosts.allows(r.Host) {
			s.log.Warn("request for an unknown host name refused", "host", r.Host, "remote", c.RealIP())
			return echo.NewHTTPError(http.StatusForbidden, "host name "+r.Host+
				" is not one this server answers to (DNS rebinding protection): start bokeh-server with --allowed-hosts "+
				normalHost(strings.Split(r.Host, ":")[0]))
		}
		return next(c)
	}
}
