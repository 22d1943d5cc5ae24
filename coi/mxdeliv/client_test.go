package mxdeliv

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// peer is a /mxdeliv over TLS on 127.0.0.1 that records requests and answers as told.
type peer struct {
	srv  *httptest.Server
	port int

	mu     sync.Mutex
	status int
	reply  string
	reqs   []seen
}

type seen struct {
	method, path, host string
	from               []string
	to                 []string
	body               string
	tls                bool
}

func newPeer(t *testing.T) *peer {
	p := &peer{status: 200, reply: "250 OK"}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.reqs = append(p.reqs, seen{
			method: r.Method, path: r.URL.Path, host: r.Host,
			from: r.Header.Values(HeaderFrom), to: r.Header.Values(HeaderTo),
			body: string(b), tls: r.TLS != nil,
		})
		status, reply := p.status, p.reply
		p.mu.Unlock()
		if status/100 == 3 {
			http.Redirect(w, r, reply, status)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(p.srv.Close)
	_, port, _ := net.SplitHostPort(p.srv.Listener.Addr().String())
	p.port, _ = strconv.Atoi(port)
	return p
}

func (p *peer) answer(status int, reply string) {
	p.mu.Lock()
	p.status, p.reply = status, reply
	p.mu.Unlock()
}

func (p *peer) requests() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// fakeClock is a settable time source for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestClient(p *peer, clk *fakeClock) *Client {
	return NewClient(ClientOptions{HTTPClient: p.srv.Client(), Port: p.port, Now: clk.Now})
}

// closedPort returns a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestClientDeliver(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		reply         string
		sender        string
		wantDelivered bool
		wantCached    bool // in the no-mxdeliv cache afterwards
	}{
		{name: "200", status: 200, reply: "250 OK", sender: "alice@a.example", wantDelivered: true},
		{name: "204 is 2xx", status: 204, sender: "alice@a.example", wantDelivered: true},
		{name: "null sender", status: 200, reply: "250 OK", wantDelivered: true},
		{name: "400 refusal", status: 400, reply: "523 Encryption Needed: Invalid Unencrypted Mail", sender: "alice@a.example"},
		{name: "413", status: 413, reply: "552 Message exceeds maximum size", sender: "alice@a.example"},
		{name: "500", status: 500, reply: "451 4.3.0 Temporary server error, try again later", sender: "alice@a.example"},
		{name: "404: no /mxdeliv", status: 404, reply: "not found", sender: "alice@a.example", wantCached: true},
		{name: "405: no /mxdeliv", status: 405, reply: "Method Not Allowed", sender: "alice@a.example", wantCached: true},
		{name: "redirect is not followed", status: 307, reply: "http://127.0.0.1:1/mxdeliv", sender: "alice@a.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			p.answer(tc.status, tc.reply)
			clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
			c := newTestClient(p, clk)
			body := "DKIM-Signature: v=1; d=a.example; b=x\r\n" + testBody
			ok, err := c.Deliver(context.Background(), "127.0.0.1", tc.sender, []string{"bob@b.example", "carol@b.example"}, []byte(body))
			if ok != tc.wantDelivered {
				t.Fatalf("delivered = %v (%v), want %v", ok, err, tc.wantDelivered)
			}
			if ok != (err == nil) {
				t.Errorf("delivered %v with error %v", ok, err)
			}
			if !ok && tc.status/100 != 3 {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != tc.status || se.Reply != tc.reply {
					t.Errorf("error %v, want a StatusError %d %q", err, tc.status, tc.reply)
				}
			}
			reqs := p.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1 (redirects are not followed)", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/mxdeliv" || !r.tls || r.body != body {
				t.Errorf("request %s %s tls=%v body %q", r.method, r.path, r.tls, r.body)
			}
			if !slices.Equal(r.to, []string{"bob@b.example", "carol@b.example"}) {
				t.Errorf("X-MAIL-TO %q, want one header per recipient", r.to)
			}
			wantFrom := []string{tc.sender}
			if tc.sender == "" {
				wantFrom = nil // absent for the null sender
			}
			if !slices.Equal(r.from, wantFrom) {
				t.Errorf("X-MAIL-FROM %q, want %q", r.from, wantFrom)
			}
			if got := c.Skip("127.0.0.1"); got != tc.wantCached {
				t.Errorf("Skip = %v, want %v", got, tc.wantCached)
			}
			if tc.wantCached {
				clk.Add(NoServiceTTL - time.Second)
				if !c.Skip("127.0.0.1") {
					t.Error("no longer skipped before 24 h")
				}
				clk.Add(time.Second)
				if c.Skip("127.0.0.1") {
					t.Error("still skipped after 24 h")
				}
			}
		})
	}
}

func TestClientRefusedTCP(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	c := NewClient(ClientOptions{Port: closedPort(t), Now: clk.Now})
	ok, err := c.Deliver(context.Background(), "127.0.0.1", "alice@a.example", []string{"bob@b.example"}, []byte(testBody))
	if ok || err == nil {
		t.Fatalf("delivered = %v, %v", ok, err)
	}
	if !c.Skip("127.0.0.1") {
		t.Error("a host refusing TCP is not cached")
	}
	clk.Add(NoServiceTTL)
	if c.Skip("127.0.0.1") {
		t.Error("still cached after 24 h")
	}
}

// TestClientVerifiesTLS: the default client trusts only real roots, so the test
// server's certificate fails and nothing is sent; given the root, it is trusted, also
// when the name comes through Resolver.
func TestClientVerifiesTLS(t *testing.T) {
	p := newPeer(t)
	c := NewClient(ClientOptions{Port: p.port})
	ok, err := c.Deliver(context.Background(), "127.0.0.1", "alice@a.example", []string{"bob@b.example"}, []byte(testBody))
	var uerr x509.UnknownAuthorityError
	if ok || !errors.As(err, &uerr) {
		t.Errorf("untrusted certificate: delivered %v, error %v", ok, err)
	}
	if len(p.requests()) != 0 {
		t.Error("a request went out over unverified TLS")
	}
	if c.Skip("127.0.0.1") {
		t.Error("a TLS failure cached the host")
	}

	roots := x509.NewCertPool()
	roots.AddCert(p.srv.Certificate())
	// httptest's certificate is for example.com: the resolver takes that name to the server.
	c = NewClient(ClientOptions{Port: p.port, RootCAs: roots, Resolver: fakeResolver{"example.com": {net.IPv4(127, 0, 0, 1)}}})
	ok, err = c.Deliver(context.Background(), "example.com.", "alice@a.example", []string{"bob@b.example"}, []byte(testBody))
	if !ok {
		t.Fatalf("trusted certificate: %v", err)
	}
	if r := p.requests(); len(r) != 1 || r[0].host != "example.com:"+strconv.Itoa(p.port) {
		t.Errorf("requests %+v", r)
	}
}

type fakeResolver map[string][]net.IP

func (r fakeResolver) LookupIP(_ context.Context, host string) ([]net.IP, error) {
	if ips, ok := r[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	c := NewClient(ClientOptions{HTTPClient: srv.Client(), Port: port, RequestTimeout: 200 * time.Millisecond})
	start := time.Now()
	ok, err := c.Deliver(context.Background(), "127.0.0.1", "alice@a.example", []string{"bob@b.example"}, []byte(testBody))
	if ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delivered %v, error %v; want the request timeout", ok, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestClientRefusesBadInput(t *testing.T) {
	p := newPeer(t)
	c := newTestClient(p, &fakeClock{t: time.Now()})
	for _, tc := range []struct {
		host, sender string
		rcpts        []string
	}{
		{"127.0.0.1", "alice@a.example", nil},
		{"127.0.0.1", "alice@a.example", []string{""}},
		{"127.0.0.1", "alice@a.example", []string{`"a,b"@b.example`}},
		{"127.0.0.1", "alice@a.example\r\nX-MAIL-TO: eve@b.example", []string{"bob@b.example"}},
		{"127.0.0.1", "alice@a.example", []string{"bob@b.example\nX: y"}},
		{"", "alice@a.example", []string{"bob@b.example"}},
		{"evil.example/path?", "alice@a.example", []string{"bob@b.example"}},
		{"host:8080", "alice@a.example", []string{"bob@b.example"}},
	} {
		if ok, err := c.Deliver(context.Background(), tc.host, tc.sender, tc.rcpts, []byte(testBody)); ok || err == nil {
			t.Errorf("%q %q %q: delivered %v, %v", tc.host, tc.sender, tc.rcpts, ok, err)
		}
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("%d requests went out", n)
	}
}

func TestCache(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	c := NewClient(ClientOptions{Now: clk.Now, CacheSize: 3})

	c.MarkSMTP("MX.B.example.")
	if !c.Skip("mx.b.example") {
		t.Fatal("MarkSMTP did not cache (names compare case-insensitively, without the root dot)")
	}
	clk.Add(SMTPTTL - time.Second)
	if !c.Skip("mx.b.example") {
		t.Error("no longer skipped before 30 min")
	}
	clk.Add(time.Second)
	if c.Skip("mx.b.example") {
		t.Error("still skipped after 30 min")
	}

	// A 24 h entry is not shortened by a later SMTP success.
	c.remember("mx.c.example", NoServiceTTL, "test")
	c.MarkSMTP("mx.c.example")
	clk.Add(SMTPTTL + time.Minute)
	if !c.Skip("mx.c.example") {
		t.Error("MarkSMTP shortened a 24 h entry")
	}
	c.Forget("mx.c.example")
	if c.Skip("mx.c.example") {
		t.Error("Forget left the host cached")
	}

	// Bounded: the entry closest to expiry makes room.
	c.remember("long.example", NoServiceTTL, "test")
	c.MarkSMTP("short.example")
	clk.Add(time.Minute)
	c.MarkSMTP("newer.example")
	c.MarkSMTP("newest.example")
	c.mu.Lock()
	n := len(c.until)
	c.mu.Unlock()
	if n > 3 {
		t.Errorf("cache holds %d hosts, bound 3", n)
	}
	if c.Skip("short.example") || !c.Skip("long.example") || !c.Skip("newer.example") || !c.Skip("newest.example") {
		t.Error("eviction did not drop the entry expiring first")
	}
}

// TestRoundTrip sends with Client to NewHandler: what one side writes, the other reads.
func TestRoundTrip(t *testing.T) {
	fp := &fakePipeline{refuse: map[string]error{"nobody@b.example": errUnknown}}
	srv := httptest.NewTLSServer(NewHandler(Options{Pipeline: fp}))
	t.Cleanup(srv.Close)
	c := NewClient(ClientOptions{HTTPClient: srv.Client(), Port: srv.Listener.Addr().(*net.TCPAddr).Port})
	ok, err := c.Deliver(context.Background(), "127.0.0.1", "alice@a.example", []string{"bob@b.example", "carol@b.example"}, []byte(testBody))
	if !ok {
		t.Fatal(err)
	}
	if len(fp.msgs) != 1 || fp.msgs[0].Sender != "alice@a.example" || len(fp.msgs[0].Recipients) != 2 || string(fp.msgs[0].Body) != testBody {
		t.Fatalf("received %+v", fp.msgs)
	}
	ok, err = c.Deliver(context.Background(), "127.0.0.1", "", []string{"bob@b.example", "nobody@b.example"}, []byte(testBody))
	var se *StatusError
	if ok || !errors.As(err, &se) || se.Status != 400 || se.Reply != errUnknown.Error() {
		t.Errorf("refused: delivered %v, %v", ok, err)
	}
	if len(fp.msgs) != 1 {
		t.Errorf("refused request delivered")
	}
}
