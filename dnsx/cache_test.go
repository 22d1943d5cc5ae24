package dnsx

import (
	"context"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
)

func TestCache(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(`a.test. 300 IN TXT "v=spf1 -all"
short.test. 0 IN TXT "never cached"
bad.test. 300 IN TXT "x"`)
	srv.ServFail("bad.test.")
	now := time.Unix(1_000_000, 0)
	r := New(srv.Addr()).WithCache(100, time.Hour)
	r.cache.now = func() time.Time { return now }
	ctx := context.Background()

	ask := func(name string) error {
		t.Helper()
		_, err := r.LookupTXT(ctx, name)
		return err
	}
	tests := []struct {
		name      string
		advance   time.Duration
		lookup    string
		wantAsked int // queries the server sees for this step
		notFound  bool
	}{
		{"first lookup asks", 0, "a.test", 1, false},
		{"second is served from cache", 0, "A.TEST", 0, false},
		{"still cached before the TTL ends", 299 * time.Second, "a.test", 0, false},
		{"asked again once the TTL ends", 2 * time.Second, "a.test", 1, false},
		{"TTL 0 is never kept", 0, "short.test", 1, false},
		{"TTL 0 asked again", 0, "short.test", 1, false},
		{"NXDOMAIN asked", 0, "nothing.test", 1, true},
		{"NXDOMAIN kept for the negative TTL", 30 * time.Second, "nothing.test", 0, true},
		{"NXDOMAIN asked again after it", negativeTTL, "nothing.test", 1, true},
	}
	for _, tc := range tests {
		now = now.Add(tc.advance)
		before := srv.Queries()
		err := ask(tc.lookup)
		if got := srv.Queries() - before; got != tc.wantAsked {
			t.Errorf("%s: server asked %d times, want %d", tc.name, got, tc.wantAsked)
		}
		if IsNotFound(err) != tc.notFound {
			t.Errorf("%s: err %v, want not-found %v", tc.name, err, tc.notFound)
		}
	}
	// Failures are never kept: every lookup of a SERVFAIL name reaches the server.
	before := srv.Queries()
	if err := ask("bad.test"); !IsTemporary(err) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	first := srv.Queries() - before
	_ = ask("bad.test")
	if again := srv.Queries() - before - first; again != first {
		t.Errorf("SERVFAIL cached: first lookup asked %d times, second %d", first, again)
	}
}

func TestCacheBounded(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(`a.test. 300 IN TXT "a"
b.test. 300 IN TXT "b"
c.test. 300 IN TXT "c"`)
	r := New(srv.Addr()).WithCache(2, time.Hour)
	for _, n := range []string{"a.test", "b.test", "c.test"} {
		if _, err := r.LookupTXT(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.cache.entries); n > 2 {
		t.Fatalf("cache holds %d entries, limit 2", n)
	}
}
