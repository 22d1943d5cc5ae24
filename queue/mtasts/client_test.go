package mtasts

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/queue/internal/testpki"
	"github.com/coibox/coibox/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// policyServer serves policies over HTTPS for mta-sts.<domain> names.
type policyServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	body    string
	ctype   string
	status  int
	fetches atomic.Int32
}

func newPolicyServer(t *testing.T, cert tls.Certificate) *policyServer {
	ps := &policyServer{ctype: "text/plain; charset=utf-8", status: 200}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.fetches.Add(1)
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		if ps.status == http.StatusFound {
			http.Redirect(w, r, "https://elsewhere.test/policy", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", ps.ctype)
		w.WriteHeader(ps.status)
		_, _ = w.Write([]byte(ps.body))
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *policyServer) set(body, ctype string, status int) {
	ps.mu.Lock()
	ps.body, ps.ctype, ps.status = body, ctype, status
	ps.mu.Unlock()
}

const enforceB = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n"

type env struct {
	dns   *dnstest.Server
	ps    *policyServer
	store *store.Store
	clk   *clock
	opts  Options
}

func newEnv(t *testing.T, cert func(ca *testpki.CA) tls.Certificate) *env {
	t.Helper()
	ca := testpki.NewCA(t)
	e := &env{dns: dnstest.New(t), clk: &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}}
	e.ps = newPolicyServer(t, cert(ca))
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.dns.Add("mta-sts.b.test. 60 IN A 127.0.0.1")
	e.dns.Add(`_mta-sts.b.test. 60 IN TXT "v=STSv1; id=one"`)
	e.ps.set(enforceB, "text/plain", 200)
	addr := e.ps.srv.Listener.Addr().String()
	e.opts = Options{
		Resolver: dnsx.New(e.dns.Addr()),
		Store:    st,
		RootCAs:  ca.Pool,
		Now:      e.clk.Now,
		Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
			// Every policy host lives on the one test server.
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return e
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(ca *testpki.CA) tls.Certificate { return ca.Leaf(t, "mta-sts.b.test") })
	c := New(e.opts)

	p := c.Get(ctx, "b.test")
	if p == nil || p.Mode != Enforce || !p.Match("mx.b.test") {
		t.Fatalf("policy %+v", p)
	}
	if n := e.ps.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d", n)
	}
	// Within the recheck interval nothing is asked again.
	c.Get(ctx, "b.test")
	if n := e.ps.fetches.Load(); n != 1 {
		t.Fatalf("fetches after second Get = %d", n)
	}

	// Same id later: the TXT is checked but the policy is not fetched again.
	e.clk.Add(2 * recheck)
	if p := c.Get(ctx, "b.test"); p == nil {
		t.Fatal("policy lost")
	}
	if n := e.ps.fetches.Load(); n != 1 {
		t.Fatalf("fetches with unchanged id = %d", n)
	}

	// A new id makes the client fetch the new policy.
	e.dns.Remove("_mta-sts.b.test", 16)
	e.dns.Add(`_mta-sts.b.test. 60 IN TXT "v=STSv1; id=two"`)
	e.ps.set("version: STSv1\nmode: testing\nmx: *.b.test\nmax_age: 3600\n", "text/plain", 200)
	e.clk.Add(2 * recheck)
	if p := c.Get(ctx, "b.test"); p == nil || p.Mode != Testing {
		t.Fatalf("policy after id change %+v", p)
	}

	// A restarted client finds the policy in the store, without fetching.
	before := e.ps.fetches.Load()
	c2 := New(e.opts)
	if p := c2.Get(ctx, "b.test"); p == nil || p.Mode != Testing {
		t.Fatalf("policy after restart %+v", p)
	}
	if n := e.ps.fetches.Load(); n != before {
		t.Fatalf("restarted client fetched again")
	}

	// The policy server breaks: the cached policy is used until it expires.
	e.dns.Remove("_mta-sts.b.test", 16)
	e.dns.Add(`_mta-sts.b.test. 60 IN TXT "v=STSv1; id=three"`)
	e.ps.set("", "text/plain", 500)
	e.clk.Add(2 * recheck)
	if p := c2.Get(ctx, "b.test"); p == nil || p.Mode != Testing {
		t.Fatalf("cached policy not used when fetch fails: %+v", p)
	}
	e.clk.Add(2 * time.Hour)
	if p := c2.Get(ctx, "b.test"); p != nil {
		t.Fatalf("expired policy still used: %+v", p)
	}
}

func TestClientNoPolicy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(e *env)
	}{
		{"no record", func(e *env) { e.dns.Remove("_mta-sts.b.test", 16) }},
		{"two records", func(e *env) { e.dns.Add(`_mta-sts.b.test. 60 IN TXT "v=STSv1; id=other"`) }},
		{"bad record", func(e *env) {
			e.dns.Remove("_mta-sts.b.test", 16)
			e.dns.Add(`_mta-sts.b.test. 60 IN TXT "v=STSv1; id=no-dashes"`)
		}},
		{"dns failure", func(e *env) { e.dns.ServFail("_mta-sts.b.test") }},
		{"http 404", func(e *env) { e.ps.set("", "text/plain", 404) }},
		{"redirect not followed", func(e *env) { e.ps.set("", "text/plain", http.StatusFound) }},
		{"wrong media type", func(e *env) { e.ps.set(enforceB, "text/html", 200) }},
		{"invalid policy", func(e *env) { e.ps.set("version: STSv1\nmode: enforce\n", "text/plain", 200) }},
		{"mode none", func(e *env) { e.ps.set("version: STSv1\nmode: none\nmax_age: 100\n", "text/plain", 200) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(ca *testpki.CA) tls.Certificate { return ca.Leaf(t, "mta-sts.b.test") })
			tc.setup(e)
			if p := New(e.opts).Get(ctx, "b.test"); p != nil {
				t.Fatalf("got policy %+v, want none", p)
			}
		})
	}
	t.Run("certificate for another name", func(t *testing.T) {
		e := newEnv(t, func(ca *testpki.CA) tls.Certificate { return ca.Leaf(t, "www.b.test") })
		if p := New(e.opts).Get(ctx, "b.test"); p != nil {
			t.Fatalf("got policy %+v over a bad certificate", p)
		}
	})
	t.Run("self-signed certificate", func(t *testing.T) {
		e := newEnv(t, func(*testpki.CA) tls.Certificate { return testpki.SelfSigned(t, "mta-sts.b.test") })
		if p := New(e.opts).Get(ctx, "b.test"); p != nil {
			t.Fatalf("got policy %+v over a self-signed certificate", p)
		}
	})
}
