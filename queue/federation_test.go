package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coibox/coibox/coi/mxdeliv"
	"github.com/coibox/coibox/queue/internal/testpki"
)

// httpsPeer is the /mxdeliv of the test's MX hosts: one TLS server answering for
// every name its certificate has, per host as told, recording what it gets.
type httpsPeer struct {
	srv    *httptest.Server
	closed string // an address where nothing listens: hosts without HTTPS
	ca     *testpki.CA

	mu     sync.Mutex
	status map[string]int // by MX host; unset: 200
	got    []httpsReq
	events *[]string // shared with the SMTP dialer: the order of connections
}

type httpsReq struct {
	host     string
	from, to []string
	body     []byte
}

func newHTTPSPeer(t *testing.T, events *[]string, names ...string) *httpsPeer {
	t.Helper()
	p := &httpsPeer{ca: testpki.NewCA(t), status: map[string]int{}, events: events}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		host, _, _ := strings.Cut(r.Host, ":")
		p.mu.Lock()
		p.got = append(p.got, httpsReq{host: host, from: r.Header.Values("X-Mail-From"), to: r.Header.Values("X-Mail-To"), body: b})
		status := p.status[host]
		p.mu.Unlock()
		switch status {
		case 0, 200:
			_, _ = io.WriteString(w, "250 OK")
		case 400:
			w.WriteHeader(400)
			_, _ = io.WriteString(w, "523 Encryption Needed: Invalid Unencrypted Mail")
		default:
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "451 4.3.0 Temporary server error, try again later")
		}
	}))
	p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.ca.Leaf(t, names...)}}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.closed = ln.Addr().String()
	ln.Close()
	return p
}

func (p *httpsPeer) answer(host string, status int) {
	p.mu.Lock()
	p.status[host] = status
	p.mu.Unlock()
}

func (p *httpsPeer) requests() []httpsReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func (p *httpsPeer) log(ev string) {
	p.mu.Lock()
	*p.events = append(*p.events, ev)
	p.mu.Unlock()
}

// client returns the federation client the queue gets: verified TLS against the
// peer's CA, port 443 of the hosts in serve reaching the peer and of any other host
// refused (a real refusal, from a closed port).
func (p *httpsPeer) client(clk *clock, serve ...string) *mxdeliv.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.log("https " + addr)
			host, _, _ := net.SplitHostPort(addr)
			to := p.closed
			if slices.Contains(serve, host) {
				to = p.srv.Listener.Addr().String()
			}
			var d net.Dialer
			return d.DialContext(ctx, network, to)
		},
		TLSClientConfig:   &tls.Config{RootCAs: p.ca.Pool},
		ForceAttemptHTTP2: true,
	}
	return mxdeliv.NewClient(mxdeliv.ClientOptions{HTTPClient: &http.Client{Transport: tr}, Now: clk.Now})
}

// withFederation rebuilds e's queue with fed, logging SMTP connections to events.
func (e *env) withFederation(fed Federation, events *[]string, mu *sync.Mutex, tweak func(*Options)) {
	e.opts.Federation = fed
	e.opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		*events = append(*events, "smtp "+addr)
		mu.Unlock()
		return e.dial(ctx, network, addr)
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	e.q = New(e.st, e.opts)
}

func TestFederation(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		wantEvents []string // connections of the first message
	}{
		{"HTTPS takes it", 200, []string{"https mx.b.test:443"}},
		{"HTTPS refuses: 400", 400, []string{"https mx.b.test:443", "smtp 192.0.2.2:25"}},
		{"HTTPS fails: 500", 500, []string{"https mx.b.test:443", "smtp 192.0.2.2:25"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer := &fakeSigner{}
			e := newEnv(t, func(o *Options) { o.Signer = signer })
			b := e.mx("b.test", "192.0.2.2", sinkOpts{})
			var events []string
			peer := newHTTPSPeer(t, &events, "mx.b.test")
			peer.answer("mx.b.test", tc.status)
			fed := peer.client(e.clk, "mx.b.test")
			e.withFederation(fed, &events, &peer.mu, nil)

			e.enqueue("alice@a.test", []string{"bob@b.test", "carol@b.test"}, message("alice@a.test", "bob@b.test", "one"))
			e.drain()

			if !slices.Equal(events, tc.wantEvents) {
				t.Errorf("connections %q, want %q", events, tc.wantEvents)
			}
			reqs := peer.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d HTTPS requests, want 1", len(reqs))
			}
			r := reqs[0]
			if !slices.Equal(r.from, []string{"alice@a.test"}) || !slices.Equal(r.to, []string{"bob@b.test", "carol@b.test"}) {
				t.Errorf("X-MAIL-FROM %q, X-MAIL-TO %q", r.from, r.to)
			}
			if !bytes.HasPrefix(r.body, []byte("DKIM-Signature: v=1; d=a.test; b=fake\r\nFrom: <alice@a.test>")) {
				t.Errorf("HTTPS body not the signed message:\n%s", r.body)
			}
			if n := signer.n.Load(); n != 1 {
				t.Errorf("signed %d times, want once for HTTPS and SMTP together", n)
			}
			if n := len(e.entries()); n != 0 {
				t.Errorf("%d entries left in the queue", n)
			}
			if n := e.stat("rcpt:delivered"); n != 2 {
				t.Errorf("%d recipients delivered, want 2", n)
			}
			got := b.received()
			if tc.status == 200 {
				if len(got) != 0 {
					t.Errorf("SMTP got %d messages after HTTPS took it", len(got))
				}
			} else {
				if len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@b.test", "carol@b.test"}) {
					t.Fatalf("SMTP fallback got %+v", got)
				}
				if !bytes.Equal(got[0].Data, r.body) {
					t.Errorf("SMTP and HTTPS bytes differ:\n%s\n---\n%s", got[0].Data, r.body)
				}
			}

			// The next message: after a fallback the host is left to SMTP for 30 min.
			events = nil
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "two"))
			e.drain()
			wantHTTPS, wantSMTP := 2, 0
			if tc.status != 200 {
				wantHTTPS, wantSMTP = 1, 2
				if !fed.Skip("mx.b.test") {
					t.Error("host not cached after the SMTP fallback")
				}
			}
			if n := len(peer.requests()); n != wantHTTPS {
				t.Errorf("second message: %d HTTPS requests in all, want %d (events %q)", n, wantHTTPS, events)
			}
			if n := b.count(); n != wantSMTP {
				t.Errorf("second message: %d SMTP messages in all, want %d", n, wantSMTP)
			}
			if tc.status == 200 {
				return
			}
			e.clk.Add(mxdeliv.SMTPTTL)
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "three"))
			e.drain()
			if n := len(peer.requests()); n != 2 {
				t.Errorf("after 30 min: %d HTTPS requests in all, want 2 (tried again)", n)
			}
		})
	}
}

// TestFederationNextMX: the preferred host has neither HTTPS nor SMTP; the next one
// is offered the message over HTTPS and takes it. The unreachable host is no longer
// cached, as after any SMTP connection error.
func TestFederationNextMX(t *testing.T) {
	e := newEnv(t, nil)
	e.dns.Add("b.test. 60 IN MX 10 mx1.b.test.\nb.test. 60 IN MX 20 mx2.b.test.\nmx1.b.test. 60 IN A 192.0.2.2\nmx2.b.test. 60 IN A 192.0.2.3")
	b := newSink(t, sinkOpts{})
	e.route("192.0.2.3", b) // 192.0.2.2:25 is not routed: refused
	var events []string
	peer := newHTTPSPeer(t, &events, "mx1.b.test", "mx2.b.test")
	fed := peer.client(e.clk, "mx2.b.test") // mx1.b.test:443 refuses
	e.withFederation(fed, &events, &peer.mu, nil)

	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "one"))
	e.drain()

	want := []string{"https mx1.b.test:443", "smtp 192.0.2.2:25", "https mx2.b.test:443"}
	if !slices.Equal(events, want) {
		t.Errorf("connections %q, want %q", events, want)
	}
	if r := peer.requests(); len(r) != 1 || r[0].host != "mx2.b.test" {
		t.Errorf("HTTPS requests %+v, want one to mx2.b.test", r)
	}
	if b.count() != 0 || len(e.entries()) != 0 {
		t.Errorf("SMTP got %d, %d entries left", b.count(), len(e.entries()))
	}
	if fed.Skip("mx1.b.test") {
		t.Error("mx1.b.test refused TCP 443 (24 h), but SMTP's connection error should have removed it")
	}
}

// TestFederationKeptConnection: with one connection for the domain, the second message
// finds the SMTP session of the first fallback open and the host skipped, and goes
// over that session without another HTTPS attempt.
func TestFederationKeptConnection(t *testing.T) {
	e := newEnv(t, nil)
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	var events []string
	peer := newHTTPSPeer(t, &events, "mx.b.test")
	peer.answer("mx.b.test", 400)
	e.withFederation(peer.client(e.clk, "mx.b.test"), &events, &peer.mu, func(o *Options) { o.ConnsPerDomain = 1 })

	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "one"))
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "two"))
	e.drain()

	if n := len(peer.requests()); n != 1 {
		t.Errorf("%d HTTPS requests, want 1", n)
	}
	if b.count() != 2 || b.sessions.Load() != 1 {
		t.Errorf("SMTP got %d messages over %d sessions, want 2 over 1", b.count(), b.sessions.Load())
	}
}

// TestFederationNotWanted: FederateFor turns HTTPS off per sender domain.
func TestFederationNotWanted(t *testing.T) {
	e := newEnv(t, nil)
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	var events []string
	peer := newHTTPSPeer(t, &events, "mx.b.test")
	var asked []string
	e.withFederation(peer.client(e.clk, "mx.b.test"), &events, &peer.mu, func(o *Options) {
		o.FederateFor = func(d string) bool {
			asked = append(asked, d)
			return d != "a.test"
		}
	})
	e.enqueue("Alice@A.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "one"))
	e.drain()
	if len(peer.requests()) != 0 || b.count() != 1 {
		t.Errorf("HTTPS %d, SMTP %d; want SMTP only", len(peer.requests()), b.count())
	}
	if !slices.Equal(asked, []string{"a.test"}) {
		t.Errorf("FederateFor asked %q", asked)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
}
