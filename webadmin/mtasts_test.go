package webadmin_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/queue/mtasts"
	"github.com/coibox/coibox/webadmin"
)

var testPolicy = webadmin.STSPolicy{Mode: "enforce", MX: []string{"MX.Example.org."}, MaxAge: 7 * 24 * time.Hour}

func TestSTSPolicyText(t *testing.T) {
	want := "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 604800\n"
	if got := testPolicy.Text(); got != want {
		t.Errorf("Text() = %q, want %q", got, want)
	}
	// What we publish must be what a sender, our own queue included, accepts.
	p, err := mtasts.Parse([]byte(testPolicy.Text()))
	if err != nil {
		t.Fatalf("our queue's parser refuses the policy: %v", err)
	}
	if p.Mode != mtasts.Enforce || !p.Match("mx.example.org") || p.Match("other.example.org") {
		t.Errorf("parsed policy %+v", p)
	}
	id, err := mtasts.ParseRecord(testPolicy.TXT())
	if err != nil || id != testPolicy.ID() {
		t.Errorf("TXT %q parses to id %q, %v; want %q", testPolicy.TXT(), id, err, testPolicy.ID())
	}
}

func TestSTSPolicyIDChangesWithPolicy(t *testing.T) {
	base := testPolicy.ID()
	if len(base) < 1 || len(base) > 32 {
		t.Fatalf("id %q has %d characters, RFC 8461 allows 1 to 32", base, len(base))
	}
	for name, p := range map[string]webadmin.STSPolicy{
		"mode":    {Mode: "testing", MX: testPolicy.MX, MaxAge: testPolicy.MaxAge},
		"mx":      {Mode: "enforce", MX: []string{"mx2.example.org"}, MaxAge: testPolicy.MaxAge},
		"max_age": {Mode: "enforce", MX: testPolicy.MX, MaxAge: 28 * 24 * time.Hour},
	} {
		if p.ID() == base {
			t.Errorf("changing the %s keeps the id %s", name, base)
		}
	}
	same := webadmin.STSPolicy{Mode: "enforce", MX: []string{"mx.example.org"}, MaxAge: testPolicy.MaxAge}
	if same.ID() != base {
		t.Errorf("the same policy written differently has id %s, want %s", same.ID(), base)
	}
}

func TestSTSPolicyServing(t *testing.T) {
	served := func(_ context.Context, d string) (bool, error) { return d == "example.org", nil }
	broken := func(context.Context, string) (bool, error) { return false, errors.New("store closed") }
	tests := []struct {
		name     string
		serves   func(context.Context, string) (bool, error)
		host     string
		path     string
		wantCode int
	}{
		{"served domain", served, "mta-sts.example.org", webadmin.STSPolicyPath, 200},
		{"with port and upper case", served, "MTA-STS.Example.ORG:443", webadmin.STSPolicyPath, 200},
		{"trailing dot", served, "mta-sts.example.org.", webadmin.STSPolicyPath, 200},
		{"domain not served", served, "mta-sts.example.net", webadmin.STSPolicyPath, 404},
		{"not an mta-sts host", served, "example.org", webadmin.STSPolicyPath, 404},
		{"bare prefix", served, "mta-sts.", webadmin.STSPolicyPath, 404},
		{"other path", served, "mta-sts.example.org", "/mta-sts.txt", 404},
		{"store failing", broken, "mta-sts.example.org", webadmin.STSPolicyPath, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := webadmin.New(webadmin.Options{MTASTS: &webadmin.MTASTS{Policy: testPolicy, Serves: tt.serves}})
			req := httptest.NewRequest("GET", tt.path, nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 {
				return
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if rec.Body.String() != testPolicy.Text() {
				t.Errorf("body %q, want %q", rec.Body, testPolicy.Text())
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		req := httptest.NewRequest("GET", webadmin.STSPolicyPath, nil)
		req.Host = "mta-sts.example.org"
		rec := httptest.NewRecorder()
		webadmin.New(webadmin.Options{}).ServeHTTP(rec, req)
		if rec.Code != 404 {
			t.Errorf("status %d, want 404", rec.Code)
		}
	})
}
