package webadmin

import (
	"net"
	"net/http"
	"strings"
)

// plainHTTPPaths are answered on plain HTTP as they are: the MTA-STS policy (a sender
// fetching it over HTTPS never comes here, but a redirect would say nothing useful),
// and the probes of service managers and Prometheus, which ask over HTTP on purpose.
// ACME HTTP-01 challenges never get this far: tlsmgr answers them first.
var plainHTTPPaths = []string{STSPolicyPath, "/healthz", "/metrics"}

// RedirectToHTTPS sends every other request on the plain HTTP listener to the same
// URL over HTTPS: browsers typing a bare name, /new and onboarding links, autoconfig
// clients that try http:// first. httpsPort is the HTTPS listener's port, left out of
// the URL when it is 443 (or "").
func RedirectToHTTPS(next http.Handler, httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil { // HTTPS at a trusted proxy in front (TrustProxies)
			next.ServeHTTP(w, r)
			return
		}
		for _, p := range plainHTTPPaths {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			http.Error(w, "use HTTPS", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") { // an IPv6 literal
			host = "[" + host + "]"
		}
		if httpsPort != "" && httpsPort != "443" {
			host += ":" + httpsPort
		}
		// 301 for what browsers fetch; 308 keeps the method and body of a POST.
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}
