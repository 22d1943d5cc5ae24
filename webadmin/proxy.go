package webadmin

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustProxies lets a reverse proxy in front of coibox (nginx terminating HTTPS and
// passing requests on over plain HTTP) say who the client is and that it came over
// HTTPS. A request from an address in proxies has its RemoteAddr replaced by the
// client X-Forwarded-For names (the rightmost address not itself a proxy: the ones
// to its left are the client's own claims), and, when X-Forwarded-Proto is "https",
// a TLS state set, so that handlers which serve HTTPS only, or count clients by
// network (/new), treat it as the proxy saw it. Requests from anywhere else keep
// their own address and have those headers ignored, so a client cannot forge them.
//
// The TLS state is a placeholder (the proxy did the handshake; no peer certificates,
// no negotiated version): handlers here only ask whether there was TLS.
func TrustProxies(next http.Handler, proxies []netip.Prefix) http.Handler {
	if len(proxies) == 0 {
		return next
	}
	trusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range proxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !trusted(ap.Addr()) {
			next.ServeHTTP(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		if client, ok := forwardedClient(r.Header.Values("X-Forwarded-For"), trusted); ok {
			r2.RemoteAddr = netip.AddrPortFrom(client, 0).String()
		}
		if r.TLS == nil && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			r2.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: host}
		}
		next.ServeHTTP(w, r2)
	})
}

// forwardedClient walks the X-Forwarded-For addresses from the right (the proxy
// nearest to us appends last) past every trusted proxy, and returns the first other
// address: the client as the outermost trusted proxy saw it.
func forwardedClient(values []string, trusted func(netip.Addr) bool) (netip.Addr, bool) {
	var addrs []string
	for _, v := range values {
		for _, a := range strings.Split(v, ",") {
			addrs = append(addrs, strings.TrimSpace(a))
		}
	}
	for i := len(addrs) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.Trim(addrs[i], "[]"))
		if err != nil {
			if ap, perr := netip.ParseAddrPort(addrs[i]); perr == nil {
				a = ap.Addr()
			} else {
				return netip.Addr{}, false // garbage: trust nothing further left
			}
		}
		if !trusted(a) {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
