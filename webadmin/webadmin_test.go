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
		{"metrics", Options{Metrics: metrics}, "GET", "/metrics", 200, "coibox_up 1\n"},
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
