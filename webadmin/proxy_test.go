package webadmin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestTrustProxies(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	h := TrustProxies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tls := "http"
		if r.TLS != nil {
			tls = "https"
		}
		_, _ = io.WriteString(w, r.RemoteAddr+" "+tls)
	}), proxies)
	tests := []struct {
		name, remote string
		xff          []string
		proto, want  string
	}{
		{"direct client, headers ignored", "192.0.2.7:5555", []string{"198.51.100.1"}, "https", "192.0.2.7:5555 http"},
		{"from the proxy", "127.0.0.1:4000", []string{"198.51.100.1"}, "https", "198.51.100.1:0 https"},
		{"proxy, plain HTTP", "127.0.0.1:4000", []string{"198.51.100.1"}, "http", "198.51.100.1:0 http"},
		{"client's forged left part skipped", "127.0.0.1:4000", []string{"6.6.6.6, 198.51.100.1"}, "", "198.51.100.1:0 http"},
		{"chain of proxies", "127.0.0.1:4000", []string{"198.51.100.1, 10.1.2.3"}, "HTTPS", "198.51.100.1:0 https"},
		{"several header lines", "127.0.0.1:4000", []string{"6.6.6.6", "198.51.100.1"}, "", "198.51.100.1:0 http"},
		{"IPv6 client", "127.0.0.1:4000", []string{"2001:db8::1"}, "", "[2001:db8::1]:0 http"},
		{"garbage", "127.0.0.1:4000", []string{"198.51.100.1, not-an-ip"}, "", "127.0.0.1:4000 http"},
		{"no header", "127.0.0.1:4000", nil, "", "127.0.0.1:4000 http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Body.String() != tt.want {
				t.Errorf("got %q, want %q", rec.Body.String(), tt.want)
			}
		})
	}
}
