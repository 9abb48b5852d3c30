package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// proxyTrust decides which peers may tell us who the client is. X-Forwarded-For,
// X-Real-IP and X-Forwarded-Proto are believed only from peers in the --trusted-proxies
// list: anyone else could rotate them to escape the login throttle, exhaust a victim's
// throttle, forge the access log or make us mark cookies Secure on plain HTTP. The
// throttle, the logs, the scratch-copy quotas and the Secure flag all ask this one rule.
type proxyTrust struct {
	nets    []*net.IPNet
	realIP  echo.IPExtractor // client address behind trusted proxies
	xffIP   echo.IPExtractor
	directs echo.IPExtractor
}

// ParseCIDRs reads --trusted-proxies: comma-separated CIDRs or single addresses.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %v", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func newProxyTrust(prefixes []netip.Prefix) *proxyTrust {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	p := &proxyTrust{directs: echo.ExtractIPDirect()}
	for _, pre := range prefixes {
		n := &net.IPNet{IP: net.IP(pre.Addr().AsSlice()), Mask: net.CIDRMask(pre.Bits(), pre.Addr().BitLen())}
		p.nets = append(p.nets, n)
		opts = append(opts, echo.TrustIPRange(n))
	}
	p.xffIP = echo.ExtractIPFromXFFHeader(opts...)
	p.realIP = echo.ExtractIPFromRealIPHeader(opts...)
	return p
}

// fromProxy reports whether the request's peer is a trusted proxy.
func (p *proxyTrust) fromProxy(r *http.Request) bool {
	if len(p.nets) == 0 {
		return false
	}
	ip := net.ParseIP(p.directs(r))
	for _, n := range p.nets {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address of the client: the peer, or behind trusted proxies the nearest
// untrusted address of X-Forwarded-For (else X-Real-IP).
func (p *proxyTrust) clientIP(r *http.Request) string {
	if !p.fromProxy(r) {
		return p.directs(r)
	}
	if len(r.Header.Values(echo.HeaderXForwardedFor)) > 0 {
		return p.xffIP(r)
	}
	return p.realIP(r)
}

// secure reports whether the browser reached us over TLS: directly, or through a trusted
// proxy that says so.
func (p *proxyTrust) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return p.fromProxy(r) && strings.EqualFold(r.Header.Get(echo.HeaderXForwardedProto), "https")
}

// secureRequest is proxyTrust.secure for this server.
func (s *Server) secureRequest(r *http.Request) bool { return s.proxies.secure(r) }

// scheme is "https" or "http" as the browser sees this server.
func (s *Server) scheme(r *http.Request) string {
	if s.secureRequest(r) {
		return "https"
	}
	return "http"
}
