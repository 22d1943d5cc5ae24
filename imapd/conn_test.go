package imapd

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.example.org"},
		DNSNames: []string{"imap.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// lineConn is a raw client connection for tests that switch layers mid-way.
type lineConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
	w io.Writer
}

func (l *lineConn) send(s string) {
	l.t.Helper()
	_ = l.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(l.w, s+"\r\n"); err != nil {
		l.t.Fatalf("send %q: %v", s, err)
	}
	if f, ok := l.w.(*flate.Writer); ok {
		if err := f.Flush(); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *lineConn) expect(pattern string) {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := l.r.ReadString('\n')
	got = strings.TrimSuffix(got, "\r\n")
	if err != nil || !lineMatch(pattern, got) {
		l.t.Fatalf("got %q (%v), want %q", got, err, pattern)
	}
}

func TestSTARTTLS(t *testing.T) {
	cfg := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = cfg })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
	l.expect("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS LOGINDISABLED] coibox IMAP ready")
	l.send("a1 LOGIN alice@example.org password123")
	l.expect("a1 NO [PRIVACYREQUIRED] Use STARTTLS before logging in")
	l.send("a2 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHBhc3N3b3JkMTIz")
	l.expect("a2 NO [PRIVACYREQUIRED] Use STARTTLS before logging in")
	l.send("a3 STARTTLS")
	l.expect("a3 OK Begin TLS negotiation now")
	// Delta Chat sends no SNI on STARTTLS.
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	l = &lineConn{t: t, c: tc, r: bufio.NewReader(tc), w: tc}
	l.send("a4 CAPABILITY")
	l.expect("* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN")
	l.expect("a4 OK CAPABILITY completed")
	l.send("a5 STARTTLS")
	l.expect("a5 BAD STARTTLS is not available here")
	l.send("a6 LOGIN alice@example.org password123")
	l.expect("a6 OK [CAPABILITY <*>] Logged in")
}

func TestImplicitTLS(t *testing.T) {
	cfg := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig, o.ImplicitTLS = cfg, true })
	c, err := imapclient.DialTLS(e.addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Caps().Has("STARTTLS") || c.Caps().Has("LOGINDISABLED") {
		t.Errorf("caps on implicit TLS: %v", c.Caps())
	}
}

// TestServeTLSBesideSTARTTLS: one Server serves port 143 (STARTTLS) and, through
// ServeTLS, port 993, sharing its limits.
func TestServeTLSBesideSTARTTLS(t *testing.T) {
	cfg := testTLSConfig(t)
	e := newEnv(t, func(o *Options) { o.TLSConfig = cfg })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeTLS(context.Background(), ln) }()
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN on the implicit TLS port: %v", err)
	}
	plain, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	l := &lineConn{t: t, c: plain, r: bufio.NewReader(plain), w: plain}
	l.expect("* OK [CAPABILITY <*> STARTTLS LOGINDISABLED] coibox IMAP ready")
}

func TestCompress(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "compressed"))
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
	l.expect("* OK <*>")
	l.send("a1 LOGIN alice@example.org password123")
	l.expect("a1 OK [CAPABILITY <*> COMPRESS=DEFLATE] Logged in")
	l.send("a2 COMPRESS DEFLATE")
	l.expect("a2 OK DEFLATE active")
	fw, _ := flate.NewWriter(c, flate.BestSpeed)
	l = &lineConn{t: t, c: c, r: bufio.NewReader(flate.NewReader(l.r)), w: fw}
	l.send("a3 SELECT INBOX")
	for range 8 {
		l.expect("* <*>")
	}
	l.expect("a3 OK [READ-WRITE] SELECT completed")
	l.send("a4 UID FETCH 1 (ENVELOPE)")
	l.expect(`* 1 FETCH (UID 1 ENVELOPE (<*> "compressed" <*>))`)
	l.expect("a4 OK UID FETCH completed")
	l.send("a5 COMPRESS DEFLATE")
	l.expect("a5 NO [COMPRESSIONACTIVE] Compression is already on")
	l.send("a6 CAPABILITY")
	l.expect("* CAPABILITY <*> QUOTA=RES-MESSAGE")
	l.expect("a6 OK CAPABILITY completed")
}

// countingLimiter is an AuthLimiter allowing max failures.
type countingLimiter struct {
	mu    sync.Mutex
	fails map[netip.Addr]int
	max   int
}

func (l *countingLimiter) Allow(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fails[ip] < l.max
}

func (l *countingLimiter) Fail(ip netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[ip]++
	return 10 * time.Millisecond
}

func (l *countingLimiter) Succeed(netip.Addr) {}

func TestLoginLimits(t *testing.T) {
	lim := &countingLimiter{fails: map[netip.Addr]int{}, max: 2}
	e := newEnv(t, func(o *Options) { o.AuthLimiter = lim })
	e.transcript(t, greeting+`
		C: a1 LOGIN alice@example.org wrong
		S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
		C: a2 LOGIN alice@example.org wrong
		S: a2 NO [AUTHENTICATIONFAILED] Authentication failed.
		C: a3 LOGIN alice@example.org password123
		S: a3 NO [UNAVAILABLE] Too many failed logins from your address; try again later
	`, nil)

	// Per account: failures from many addresses lock the account.
	e2 := newEnv(t, func(o *Options) { o.Limits.AccountFailures = 3 })
	for i := range 3 {
		_ = i
		e2.transcript(t, greeting+`
			C: a1 LOGIN Alice@example.org wrong
			S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
		`, nil)
	}
	e2.transcript(t, greeting+`
		C: a1 LOGIN alice@example.org password123
		S: a1 NO [UNAVAILABLE] Too many failed logins for this account; try again later
		C: a2 LOGIN bob@example.org x
		S: a2 NO [AUTHENTICATIONFAILED] Authentication failed.
	`, nil)
}

func TestConnectionLimits(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxConnsPerIP = 2
		o.Limits.MaxConnsPerAccount = 1
	})
	dial := func() *lineConn {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
	}
	a := dial()
	a.expect("* OK <*>")
	a.send("a1 LOGIN alice@example.org password123")
	a.expect("a1 OK <*>")
	b := dial()
	b.expect("* OK <*>")
	b.send("b1 LOGIN alice@example.org password123")
	b.expect("b1 NO [LIMIT] Too many connections for this account (limit 1)")
	c := dial()
	c.expect("* BYE [UNAVAILABLE] Too many connections from your address (limit 2)")
	a.send("a2 LOGOUT")
	a.expect("* BYE Logging out")
	a.expect("a2 OK LOGOUT completed")
	time.Sleep(50 * time.Millisecond)
	b.send("b2 LOGIN alice@example.org password123")
	b.expect("b2 OK <*>")
}

func TestIdleTimeoutAndShutdown(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &lineConn{t: t, c: c, r: bufio.NewReader(c), w: c}
	l.expect("* OK <*>")
	l.expect("* BYE Autologout: idle for too long")

	e2 := newEnv(t)
	c2, err := net.Dial("tcp", e2.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	l2 := &lineConn{t: t, c: c2, r: bufio.NewReader(c2), w: c2}
	l2.expect("* OK <*>")
	l2.send("a1 LOGIN alice@example.org password123")
	l2.expect("a1 OK <*>")
	l2.send("a2 IDLE")
	l2.expect("+ idling")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = e2.srv.Shutdown(ctx) }()
	l2.expect("* BYE Server shutting down")
}
