package tlsmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// handshake runs one TLS handshake over 127.0.0.1 between a listener using m's config
// and a client using client; it returns the client's view and the SNI the server saw.
func handshake(t *testing.T, m *Manager, client *tls.Config) (tls.ConnectionState, string, error) {
	t.Helper()
	srv := m.TLSConfig()
	sni := make(chan string, 1)
	forClient := srv.GetConfigForClient
	srv.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni <- h.ServerName
		return forClient(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := tls.NewListener(ln, srv).Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).HandshakeContext(t.Context()) // the client reports failures
	}()
	defer func() { <-done }()

	d := tls.Dialer{Config: client}
	c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		return tls.ConnectionState{}, "", err
	}
	defer c.Close()
	select {
	case s := <-sni:
		return c.(*tls.Conn).ConnectionState(), s, nil
	default:
		t.Fatal("server saw no ClientHello")
		return tls.ConnectionState{}, "", nil
	}
}

func serial(m *Manager) *big.Int { return m.cert.Load().Leaf.SerialNumber }

func TestSelfSigned(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := Options{Mode: SelfSigned, Hostname: "Mail.Example.org.", ExtraNames: []string{"mx.example.org"}, DataDir: dir}
	m, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	crtPath, keyPath := m.selfSignedPaths()
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
	if _, err := os.Stat(crtPath); err != nil {
		t.Error(err)
	}

	leaf := m.cert.Load().Leaf
	if want := []string{"mail.example.org", "mx.example.org", "localhost"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("DNS names = %q, want %q", leaf.DNSNames, want)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses = %v", leaf.IPAddresses)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Mode != SelfSigned || !strings.Contains(st[0].Issuer, issuerOrg) ||
		!slices.Contains(st[0].Names, "::1") || st[0].NotAfter.Before(time.Now().Add(300*24*time.Hour)) || st[0].LastError != "" {
		t.Errorf("Status = %+v", st)
	}

	// Each step runs New again on the same directory and says whether the certificate
	// on disk must have been kept.
	first := serial(m)
	steps := []struct {
		name    string
		prepare func()
		extra   []string
		keep    bool
	}{
		{"restart reuses", nil, []string{"mx.example.org"}, true},
		{"names changed", nil, []string{"mx.example.org", "imap.example.org"}, false},
		{"same names again", nil, []string{"mx.example.org", "imap.example.org"}, true},
		{"near expiry", func() {
			names := []string{"mail.example.org", "mx.example.org", "imap.example.org", "localhost"}
			crt, key, err := makeSelfSigned("mail.example.org", names, time.Now().Add(-350*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := writeSelfSigned(crtPath, keyPath, crt, key); err != nil {
				t.Fatal(err)
			}
		}, []string{"mx.example.org", "imap.example.org"}, false},
		{"corrupt files", func() {
			if err := os.WriteFile(crtPath, []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"mx.example.org", "imap.example.org"}, false},
	}
	prev := first
	for _, s := range steps {
		if s.prepare != nil {
			s.prepare()
			// The files now hold something else; compare with what is on disk.
			if c, err := tls.LoadX509KeyPair(crtPath, keyPath); err == nil {
				prev = c.Leaf.SerialNumber
			} else {
				prev = nil
			}
		}
		o := opts
		o.ExtraNames = s.extra
		m, err := New(ctx, o)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := serial(m)
		if kept := prev != nil && got.Cmp(prev) == 0; kept != s.keep {
			t.Errorf("%s: certificate kept = %v, want %v", s.name, kept, s.keep)
		}
		if needsRenewal(m.cert.Load().Leaf, time.Now()) {
			t.Errorf("%s: serving a certificate that needs renewal", s.name)
		}
		prev = got
	}
}

func TestHandshakes(t *testing.T) {
	m, err := New(t.Context(), Options{Mode: SelfSigned, Hostname: "mail.example.org", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(m.cert.Load().Leaf)

	tests := []struct {
		name       string
		serverName string // "" or an IP address: the client sends no SNI
		insecure   bool
		protos     []string
		maxVersion uint16
		wantSNI    string
		wantProto  string
		wantErr    bool
	}{
		{name: "no SNI, verified by IP", serverName: "127.0.0.1"},
		{name: "no SNI at all", insecure: true},
		{name: "no SNI, ALPN imap", serverName: "127.0.0.1", protos: []string{"imap"}, wantProto: "imap"},
		{name: "no SNI, ALPN smtp", insecure: true, protos: []string{"smtp"}, wantProto: "smtp"},
		{name: "SNI, ALPN h2", serverName: "mail.example.org", protos: []string{"h2", "http/1.1"}, wantSNI: "mail.example.org", wantProto: "h2"},
		{name: "ALPN http/1.1", serverName: "localhost", protos: []string{"http/1.1"}, wantSNI: "localhost", wantProto: "http/1.1"},
		{name: "unknown ALPN still connects", serverName: "127.0.0.1", protos: []string{"pop3"}},
		{name: "unknown SNI gets the primary", serverName: "other.example", insecure: true, wantSNI: "other.example"},
		{name: "TLS 1.1 refused", serverName: "127.0.0.1", maxVersion: tls.VersionTLS11, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, sni, err := handshake(t, m, &tls.Config{
				ServerName:         tt.serverName,
				RootCAs:            roots,
				InsecureSkipVerify: tt.insecure,
				NextProtos:         tt.protos,
				MinVersion:         tls.VersionTLS10,
				MaxVersion:         tt.maxVersion,
			})
			if tt.wantErr {
				if err == nil {
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sni != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", sni, tt.wantSNI)
			}
			if st.NegotiatedProtocol != tt.wantProto {
				t.Errorf("ALPN = %q, want %q", st.NegotiatedProtocol, tt.wantProto)
			}
			if err := st.PeerCertificates[0].VerifyHostname("mail.example.org"); err != nil {
				t.Errorf("served certificate is not the primary: %v", err)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	m, err := New(t.Context(), Options{Mode: SelfSigned, Hostname: "mail.example.org", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.TLSConfig(), m.TLSConfig()
	if a == b {
		t.Error("TLSConfig returned the same pointer twice; callers must not share mutations")
	}
	if a.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", a.MinVersion)
	}
	for _, p := range []string{"h2", "http/1.1", "imap", "smtp"} {
		if !slices.Contains(a.NextProtos, p) {
			t.Errorf("NextProtos %q lacks %q", a.NextProtos, p)
		}
	}
	if slices.Contains(a.NextProtos, "acme-tls/1") {
		t.Error("acme-tls/1 offered outside mode acme")
	}
	a.NextProtos = nil
	if len(m.TLSConfig().NextProtos) == 0 {
		t.Error("changing a copy changed the manager")
	}
}

func writePair(t *testing.T, crtPath, keyPath, name string, modTime time.Time) *big.Int {
	t.Helper()
	crt, key, err := makeSelfSigned(name, []string{name}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{crtPath: crt, keyPath: key} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Explicit times, because a rewrite within the file system's timestamp
		// granularity would otherwise look unchanged.
		if err := os.Chtimes(path, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	crtPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	t0 := time.Now().Add(-time.Hour)
	a := writePair(t, crtPath, keyPath, "mail.example.org", t0)

	m, err := New(t.Context(), Options{Mode: Files, Hostname: "mail.example.org", CertFile: crtPath, KeyFile: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	served := func() *big.Int {
		c, err := m.getCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber
	}
	expire := func() { m.nextCheck.Store(0) } // as if the check interval had passed

	var b, c *big.Int
	steps := []struct {
		name    string
		prepare func()
		want    func() *big.Int
		wantErr bool
	}{
		{"loaded", nil, func() *big.Int { return a }, false},
		{"rewritten, interval not over", func() { b = writePair(t, crtPath, keyPath, "mail.example.org", t0.Add(time.Minute)) },
			func() *big.Int { return a }, false},
		{"interval over", expire, func() *big.Int { return b }, false},
		{"key no longer matches", func() {
			other := filepath.Join(dir, "other.pem")
			writePair(t, other, keyPath, "mail.example.org", t0.Add(2*time.Minute))
			expire()
		}, func() *big.Int { return b }, true},
		{"fixed", func() {
			c = writePair(t, crtPath, keyPath, "mail.example.org", t0.Add(3*time.Minute))
			expire()
		}, func() *big.Int { return c }, false},
		{"removed", func() {
			os.Remove(crtPath)
			expire()
		}, func() *big.Int { return c }, true},
	}
	for _, s := range steps {
		if s.prepare != nil {
			s.prepare()
		}
		if got, want := served(), s.want(); got.Cmp(want) != 0 {
			t.Errorf("%s: serving serial %v, want %v", s.name, got, want)
		}
		st := m.Status()
		if (st[0].LastError != "") != s.wantErr {
			t.Errorf("%s: Status last error = %q, want error: %v", s.name, st[0].LastError, s.wantErr)
		}
	}

	// A real handshake without SNI, after the reloads.
	writePair(t, crtPath, keyPath, "mail.example.org", t0.Add(4*time.Minute))
	expire()
	st, _, err := handshake(t, m, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"imap"}})
	if err != nil || st.NegotiatedProtocol != "imap" {
		t.Fatalf("handshake: %v, ALPN %q", err, st.NegotiatedProtocol)
	}
}

func TestFilesErrors(t *testing.T) {
	dir := t.TempDir()
	crtPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, crtPath, keyPath, "mail.example.org", time.Now())
	writePair(t, filepath.Join(dir, "other.pem"), filepath.Join(dir, "otherkey.pem"), "mail.example.org", time.Now())

	tests := []struct {
		name, crt, key, want string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyPath, "nope.pem"},
		{"missing key", crtPath, filepath.Join(dir, "nokey.pem"), "nokey.pem"},
		{"mismatched pair", crtPath, filepath.Join(dir, "otherkey.pem"), "does not match"},
		{"no key given", crtPath, "", "key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), Options{Mode: Files, Hostname: "mail.example.org", CertFile: tt.crt, KeyFile: tt.key})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		o    Options
		want string
	}{
		{"no hostname", t.Context(), Options{Mode: SelfSigned, DataDir: t.TempDir()}, "no hostname"},
		{"unknown mode", t.Context(), Options{Mode: "letsencrypt", Hostname: "a.example"}, `unknown mode "letsencrypt"`},
		{"self-signed without data dir", t.Context(), Options{Mode: SelfSigned, Hostname: "a.example"}, "no data directory"},
		{"acme without cache", t.Context(), Options{Mode: ACME, Hostname: "a.example"}, "no cache directory"},
		{"cancelled", cancelled, Options{Mode: SelfSigned, Hostname: "a.example", DataDir: t.TempDir()}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.ctx, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// newACME returns a manager whose CA address refuses connections, so that a test that
// accidentally asks the CA fails at once instead of reaching the network.
func newACME(t *testing.T, domains func(context.Context) ([]string, error)) *Manager {
	t.Helper()
	m, err := New(t.Context(), Options{
		Mode:          ACME,
		Hostname:      "mail.example.org",
		ExtraNames:    []string{"MX.example.org"},
		ACMEDirectory: "http://127.0.0.1:1/directory",
		ACMECache:     t.TempDir(),
		Domains:       domains,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestACMEHostPolicy(t *testing.T) {
	ok := func(context.Context) ([]string, error) { return []string{"example.org", "Example.NET"}, nil }
	failing := func(context.Context) ([]string, error) { return nil, errors.New("database is down") }

	tests := []struct {
		name    string
		domains func(context.Context) ([]string, error)
		host    string
		want    string // "" for allowed, else part of the error
	}{
		{"hostname", ok, "mail.example.org", ""},
		{"hostname any case, trailing dot", ok, "MAIL.Example.org.", ""},
		{"extra name", ok, "mx.example.org", ""},
		{"mta-sts of a domain", ok, "mta-sts.example.org", ""},
		{"autoconfig of a domain", ok, "autoconfig.example.net", ""},
		{"mta-sts of another domain", ok, "mta-sts.example.com", "not a name of this server"},
		{"the domain itself", ok, "example.org", "not a name of this server"},
		{"other subdomain", ok, "www.example.org", "not a name of this server"},
		{"prefix of a non-domain", ok, "autoconfig.mail.example.org", "not a name of this server"},
		{"empty", ok, "", "not a name of this server"},
		{"no domain callback", nil, "mta-sts.example.org", "not a name of this server"},
		{"domains unavailable", failing, "mta-sts.example.org", "database is down"},
		{"domains unavailable, static name", failing, "mail.example.org", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newACME(t, tt.domains).hostPolicy(t.Context(), tt.host)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestACMEConfigAndHTTP(t *testing.T) {
	m := newACME(t, nil)
	c := m.TLSConfig()
	for _, p := range []string{"h2", "http/1.1", "imap", "smtp", "acme-tls/1"} {
		if !slices.Contains(c.NextProtos, p) {
			t.Errorf("NextProtos %q lacks %q", c.NextProtos, p)
		}
	}

	h := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fallback")
	}))
	tests := []struct {
		host, path string
		code       int
		fallback   bool
	}{
		{"mail.example.org", "/", 200, true},
		{"mail.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", 200, true},
		// An unknown token is looked up in the cache only: no CA involved.
		{"mail.example.org", "/.well-known/acme-challenge/token", 404, false},
		{"evil.example", "/.well-known/acme-challenge/token", 403, false},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://"+tt.host+tt.path, nil))
		if w.Code != tt.code || (w.Body.String() == "fallback") != tt.fallback {
			t.Errorf("GET %s%s: %d %q, want %d, fallback %v", tt.host, tt.path, w.Code, w.Body.String(), tt.code, tt.fallback)
		}
	}

	if w := httptest.NewRecorder(); true {
		other, err := New(t.Context(), Options{Mode: SelfSigned, Hostname: "a.example", DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		other.HTTPHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/.well-known/acme-challenge/x", nil))
		if w.Code != 404 {
			t.Errorf("self-signed HTTPHandler(nil): %d, want 404", w.Code)
		}
	}
}

// TestACMENoSNI serves a certificate that is already in the autocert cache, as after a
// restart, to handshakes without SNI or with a foreign name.
func TestACMENoSNI(t *testing.T) {
	m := newACME(t, nil)
	crt, key, err := makeSelfSigned("mail.example.org", []string{"mail.example.org"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// autocert's cache entry: private key first, then the chain.
	if err := os.WriteFile(filepath.Join(m.acmeCache, "mail.example.org"), append(key, crt...), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}

	st := m.Status()
	if len(st) != 2 || st[0].NotAfter.IsZero() || !slices.Equal(st[1].Names, []string{"mx.example.org"}) || !st[1].NotAfter.IsZero() {
		t.Errorf("Status before any handshake = %+v", st)
	}

	tests := []struct {
		name, serverName string
		protos           []string
		wantProto        string
	}{
		{"no SNI", "", nil, ""},
		{"no SNI, ALPN imap", "", []string{"imap"}, "imap"},
		{"foreign SNI", "unknown.example.com", []string{"smtp"}, "smtp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, _, err := handshake(t, m, &tls.Config{ServerName: tt.serverName, InsecureSkipVerify: true, NextProtos: tt.protos})
			if err != nil {
				t.Fatal(err)
			}
			if got := cs.PeerCertificates[0].SerialNumber; got.Cmp(want.Leaf.SerialNumber) != 0 {
				t.Errorf("served serial %v, want the cached primary %v", got, want.Leaf.SerialNumber)
			}
			if cs.NegotiatedProtocol != tt.wantProto {
				t.Errorf("ALPN = %q, want %q", cs.NegotiatedProtocol, tt.wantProto)
			}
		})
	}
	if st := m.Status(); st[0].LastError != "" || st[0].Names[0] != "mail.example.org" {
		t.Errorf("Status after handshakes = %+v", st)
	}
}

// TestSelfSignedCoversDomains: the self-signed certificate names every served
// domain, `_`-prefixed ones included, and a domain added later from the next
// refresh.
func TestSelfSignedCoversDomains(t *testing.T) {
	domains := []string{"chat.example", "_lan.example"}
	var mu sync.Mutex
	m, err := New(t.Context(), Options{Mode: SelfSigned, Hostname: "mail.example.org", DataDir: t.TempDir(),
		Domains: func(context.Context) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(domains), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.cert.Load().Leaf.DNSNames, []string{"mail.example.org", "chat.example", "_lan.example", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("DNS names = %q, want %q", got, want)
	}
	mu.Lock()
	domains = append(domains, "new.example")
	mu.Unlock()
	m.nextCheck.Store(0)
	c, err := m.getCertificate(&tls.ClientHelloInfo{ServerName: "new.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Leaf.DNSNames, "new.example") {
		t.Errorf("after a domain was added: DNS names %q", c.Leaf.DNSNames)
	}
}
