package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/internal/testutil"
)

// The tests in this file get real certificates from Pebble, Let's Encrypt's test CA,
// which validates each challenge by connecting to this process: the name resolves
// (through an in-process DNS server) to 127.0.0.1, where the test serves the manager's
// TLS config and HTTP handler on the ports Pebble was told.

const pebbleName = "mail.example.org"

type pebbleEnv struct {
	pebble            *testutil.Pebble
	m                 *Manager
	httpPort, tlsPort int
}

// newPebbleEnv starts DNS and Pebble (issuing certificates valid for validity, zero
// for 90 days) and makes an ACME manager for pebbleName renewing renewBefore their
// expiry (zero for the default).
func newPebbleEnv(t *testing.T, validity, renewBefore time.Duration) *pebbleEnv {
	t.Helper()
	dns := dnstest.New(t)
	dns.Add(pebbleName + ". 60 IN A 127.0.0.1")
	ports := testutil.FreePorts(t, 2)
	p := testutil.StartPebble(t, testutil.PebbleOptions{DNS: dns.Addr(), HTTPPort: ports[0], TLSPort: ports[1], Validity: validity})
	m, err := New(t.Context(), Options{
		Mode:            ACME,
		Hostname:        pebbleName,
		DataDir:         t.TempDir(),
		ACMEDirectory:   p.DirectoryURL,
		ACMERoots:       p.CA.Pool,
		ACMERenewBefore: renewBefore,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &pebbleEnv{pebble: p, m: m, httpPort: ports[0], tlsPort: ports[1]}
}

// serveTLS serves m's TLS config on addr ("127.0.0.1:0" for any port); each
// connection echoes what it reads. It returns the address.
func serveTLS(t *testing.T, m *Manager, addr string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", addr, m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// serveHTTP serves m's HTTP handler (ACME HTTP-01 answers) on 127.0.0.1:port.
func serveHTTP(t *testing.T, m *Manager, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// dialCert handshakes with addr, sending sni (none if ""), and returns the leaf
// served. The handshake must finish within five seconds: it must never wait for
// the CA.
func dialCert(t *testing.T, addr, sni string) *x509.Certificate {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: sni, InsecureSkipVerify: true}}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// waitIssued waits until addr serves a certificate for pebbleName that verifies
// against Pebble's current root, and returns it.
func (e *pebbleEnv) waitIssued(t *testing.T, addr string, wait time.Duration) *x509.Certificate {
	t.Helper()
	roots, err := e.pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: pebbleName, RootCAs: roots}}
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err == nil {
			leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
			c.Close()
			return leaf
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("handshake: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from Pebble after %v: %v; status %+v", wait, err, e.m.Status())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isFallback(c *x509.Certificate) bool {
	return len(c.Issuer.Organization) == 1 && c.Issuer.Organization[0] == issuerOrg
}

// TestACMEPebble obtains a certificate by each challenge type: TLS-ALPN-01 with only
// the TLS port open to Pebble, HTTP-01 with only the HTTP port. Until it is issued,
// handshakes get the self-signed fallback at once; afterwards clients with and
// without SNI get the issued one, and the status says so.
func TestACMEPebble(t *testing.T) {
	t.Parallel()
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			e := newPebbleEnv(t, 0, 0)
			var addr string
			if challenge == "tls-alpn-01" {
				addr = serveTLS(t, e.m, "127.0.0.1:"+strconv.Itoa(e.tlsPort))
			} else {
				serveHTTP(t, e.m, e.httpPort)
				addr = serveTLS(t, e.m, "127.0.0.1:0")
			}
			if c := dialCert(t, addr, pebbleName); !isFallback(c) {
				t.Fatalf("first handshake got %v, want the self-signed fallback", c.Issuer)
			}
			if st := e.m.Status(); !st[0].Fallback {
				t.Errorf("status during issuance = %+v, want Fallback", st[0])
			}
			leaf := e.waitIssued(t, addr, time.Minute)
			if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("issuer %v, want Pebble's intermediate", leaf.Issuer)
			}
			if c := dialCert(t, addr, ""); c.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("client without SNI got %v (issuer %v), want the issued certificate", c.SerialNumber, c.Issuer)
			}
			st := e.m.Status()
			if st[0].Fallback || st[0].LastError != "" || st[0].NotAfter != leaf.NotAfter {
				t.Errorf("status after issuance = %+v", st[0])
			}
			if w := e.m.Warnings(); len(w) != 0 {
				t.Errorf("warnings after issuance: %q", w)
			}
		})
	}
}

// TestACMECADown: with the CA unreachable, handshakes get the fallback without
// waiting, the status and warnings say why, and once the CA is back the certificate
// comes without a restart, at the next retry (a minute on).
func TestACMECADown(t *testing.T) {
	t.Parallel()
	e := newPebbleEnv(t, 0, 0)
	e.pebble.Stop()
	addr := serveTLS(t, e.m, "127.0.0.1:"+strconv.Itoa(e.tlsPort))
	for range 3 {
		if c := dialCert(t, addr, pebbleName); !isFallback(c) {
			t.Fatalf("handshake with the CA down got %v, want the self-signed fallback", c.Issuer)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.m.Status()[0].LastError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no error recorded with the CA down: %+v", e.m.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := e.m.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], pebbleName+" is served a self-signed certificate until ACME issues one (last error") ||
		!strings.Contains(w[0], "connection refused") {
		t.Errorf("warnings with the CA down: %q", w)
	}
	if err := e.pebble.Start(); err != nil {
		t.Fatal(err)
	}
	go e.m.Run(t.Context()) // retries without waiting for a handshake
	e.waitIssued(t, addr, 2*firstACMERetry)
	if w := e.m.Warnings(); len(w) != 0 {
		t.Errorf("warnings once issued: %q", w)
	}
}

// TestACMERenewal: a certificate valid for a minute and renewed 55 s before its expiry
// is renewed some 5 to 11 s after issuance; a connection made before the renewal
// keeps working after it, and new handshakes get the new certificate without a
// restart.
func TestACMERenewal(t *testing.T) {
	t.Parallel()
	e := newPebbleEnv(t, time.Minute, 55*time.Second)
	addr := serveTLS(t, e.m, "127.0.0.1:"+strconv.Itoa(e.tlsPort))
	dialCert(t, addr, pebbleName) // starts the order
	first := e.waitIssued(t, addr, time.Minute)

	roots, err := e.pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: pebbleName, RootCAs: roots}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	held := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]

	deadline := time.Now().Add(45 * time.Second)
	for {
		c := e.waitIssued(t, addr, time.Minute)
		if c.SerialNumber.Cmp(first.SerialNumber) != 0 && c.SerialNumber.Cmp(held.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %v 45 s on: no renewal", c.SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("still here\n")); err != nil {
		t.Fatalf("write on the connection made before the renewal: %v", err)
	}
	buf := make([]byte, len("still here\n"))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "still here\n" {
		t.Fatalf("read on the connection made before the renewal: %q, %v", buf, err)
	}
	// The renewals go on while Pebble runs; stopped, they back off for half an hour.
	e.pebble.Stop()
}
