package api

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// Drive-by protection. A server on loopback (or a LAN) is still reachable from every web page
// its user opens: such a page may make the browser send requests carrying the user's
// cookies (multi-user) or simply its network position (single-user, where everything is
// granted). So a request is classified by where the browser says it comes from, and one
// from another site may read only published documents and write only a viewer's scratch
// copy of them, unless its origin is listed in --allowed-origins.
type site uint8

const (
	// siteUnknown: no browser said anything (the Python client, curl, an old browser).
	siteUnknown site = iota
	// siteSame: this server's own pages, or a page the user opened by hand.
	siteSame
	// siteAllowed: a page of an origin in --allowed-origins.
	siteAllowed
	// siteForeign: a page of any other site.
	siteForeign
)

// originList is --allowed-origins: normalised scheme://host[:port] values, or "*" for any.
type originList struct {
	any bool
	set map[string]bool
}

func newOriginList(origins []string) originList {
	l := originList{set: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
		case o == "*":
			l.any = true
		default:
			if n, ok := normalOrigin(o); ok {
				l.set[n] = true
			}
		}
	}
	return l
}

func (l originList) allows(origin string) bool {
	if l.any {
		return true
	}
	n, ok := normalOrigin(origin)
	return ok && l.set[n]
}

// normalOrigin returns scheme://host[:port] in lower case without the scheme's default
// port, so "HTTPS://Site.example:443/" and "https://site.example" compare equal.
func normalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil &&
		(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme + "://" + host, true
}

// ParseOrigins reads --allowed-origins (comma-separated); an entry that is not
// scheme://host[:port] is an error, so a typo does not silently allow nothing.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if _, ok := normalOrigin(o); !ok && o != "*" {
			return nil, &originError{o}
		}
		out = append(out, o)
	}
	return out, nil
}

type originError struct{ origin string }

func (e *originError) Error() string {
	return "allowed origin " + e.origin + ": want scheme://host[:port], e.g. https://site.example, or *"
}

// siteOf classifies a request by Origin, then Sec-Fetch-Site, then Referer. The own origin
// is the request's Host (checked by the Host allow-list), whatever the scheme: a page on
// this host and port is this server's.
func (s *Server) siteOf(r *http.Request) site {
	if origin := r.Header.Get("Origin"); origin != "" {
		return s.classifyOrigin(r, origin)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return siteSame
	case "same-site", "cross-site":
		// No Origin: a plain navigation or a <script>/<img> load. Only an allowed
		// embedder's page (told by its Referer) is not foreign.
		if ref := r.Header.Get("Referer"); ref != "" && s.origins.allows(ref) {
			return siteAllowed
		}
		return siteForeign
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return s.classifyOrigin(r, ref)
	}
	return siteUnknown
}

func (s *Server) classifyOrigin(r *http.Request, origin string) site {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" { // includes "null": sandboxed frames, file: and data: pages
		return siteForeign
	}
	if sameHost(u.Host, u.Scheme, r.Host, s.scheme(r)) {
		return siteSame
	}
	if s.origins.allows(origin) {
		return siteAllowed
	}
	return siteForeign
}

// sameHost compares an origin's host with the request's Host. When neither names a port
// only the names count: behind a TLS proxy that is not in --trusted-proxies the page is
// https://name and the request looks like http://name, and both are this server.
func sameHost(originHost, originScheme, host, scheme string) bool {
	_, _, errO := net.SplitHostPort(originHost)
	_, _, errH := net.SplitHostPort(host)
	if errO != nil && errH != nil {
		return strings.EqualFold(originHost, host)
	}
	return strings.EqualFold(withDefaultPort(originHost, originScheme), withDefaultPort(host, scheme))
}

// withDefaultPort appends the scheme's default port to a host without one.
func withDefaultPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// foreign reports whether the request comes from a page of another site.
func (s *Server) foreign(c echo.Context) bool { return s.siteOf(c.Request()) == siteForeign }

// errCrossSite refuses what a page of another site may not do; the message names the fix.
func (s *Server) errCrossSite(c echo.Context) error {
	from := c.Request().Header.Get("Origin")
	if from == "" {
		from = "another site"
	}
	return echo.NewHTTPError(http.StatusForbidden, "cross-site request refused: a page of "+from+
		" may read only published documents; list trusted sites with --allowed-origins")
}

// refuseForeign is the check of routes that read private data or change something.
func (s *Server) refuseForeign(c echo.Context) error {
	if s.foreign(c) {
		return s.errCrossSite(c)
	}
	return nil
}

// checkStateChangingGET guards the GETs the original made change state or log in (rungc,
// find-or-create by title, loginfromapikey, logout): a cross-site top-level GET carries
// SameSite=Lax cookies, and in single-user mode needs none. They need a sign that the
// request is not a drive-by: this server's own page or an allowed one, a request the user
// made by hand (Sec-Fetch-Site: none), or the API key headers the Python client sends
// (which a page of another site cannot add without a preflight, and so an Origin).
func (s *Server) checkStateChangingGET(c echo.Context) error {
	r := c.Request()
	switch s.siteOf(r) {
	case siteSame, siteAllowed:
		return nil
	case siteUnknown:
		if r.Header.Get(headerUserAPIKey) != "" || r.Header.Get(headerDocAPIKey) != "" {
			return nil
		}
		return echo.NewHTTPError(http.StatusForbidden, "this GET changes state: open it from this server's pages, "+
			"or send the BOKEHUSER-API-KEY (or BOKEH-API-KEY) header as the Python client does")
	}
	return s.errCrossSite(c)
}
