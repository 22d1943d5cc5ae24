package webadmin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("coibox_up 1\n"))
	})
	failing := func(context.Context) error { return errors.New("store closed") }
	tests := []struct {
		name     string
		opts     Options
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"healthy without a check", Options{}, "GET", "/healthz", 200, "ok\n"},
		{"healthy with a passing check", Options{Health: func(context.Context) error { return nil }}, "GET", "/healthz", 200, "ok\n"},
		{"unhealthy", Options{Health: failing}, "GET", "/healthz", 503, "unhealthy: store closed\n"},
		{"healthy with warnings", Options{Warnings: func() []string { return []string{"tls: a", "tls: b"} }}, "GET", "/healthz", 200,
			"ok\nwarning: tls: a\nwarning: tls: b\n"},
		{"metrics, not from this host", Options{Metrics: metrics}, "GET", "/metrics", 401, "listen.metrics_token"},
		{"no metrics handler", Options{}, "GET", "/metrics", 404, ""},
		{"unknown path", Options{Metrics: metrics}, "GET", "/nope", 404, ""},
		{"wrong method", Options{}, "POST", "/healthz", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			New(tt.opts).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if tt.wantBody != "" && !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}
}

func TestMetricsGuard(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("coibox_up 1\n")) })
	h := New(Options{Metrics: metrics, MetricsToken: "s3cret"})
	for _, tc := range []struct {
		name, remote, auth string
		code               int
	}{
		{"loopback", "127.0.0.1:5000", "", 200},
		{"IPv6 loopback", "[::1]:5000", "", 200},
		{"elsewhere", "192.0.2.1:5000", "", 401},
		{"elsewhere with the token", "192.0.2.1:5000", "Bearer s3cret", 200},
		{"elsewhere with a wrong token", "192.0.2.1:5000", "Bearer s3cre", 401},
		{"basic auth", "192.0.2.1:5000", "Basic czNjcmV0", 401},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = tc.remote
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.code)
		}
	}
	// Without a token configured, no bearer opens it.
	h = New(Options{Metrics: metrics})
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 401 {
		t.Errorf("empty token: %d", w.Code)
	}
}
