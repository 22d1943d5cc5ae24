package alpnmux

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCert is a self-signed certificate for "localhost".
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// echoTLS serves l with TLS, answering each connection with name and the
// negotiated protocol, so a client sees which route took it.
func echoTLS(t *testing.T, l net.Listener, name string, cert tls.Certificate) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1", "imap", "smtp"}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				if err := tc.Handshake(); err != nil {
					return
				}
				_, _ = tc.Write([]byte(name + " " + tc.ConnectionState().NegotiatedProtocol + "\n"))
			}()
		}
	}()
}

func TestRoutes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, time.Second, nil)
	cert := testCert(t)
	echoTLS(t, m.Route("imap"), "imapd", cert)
	echoTLS(t, m.Route("smtp"), "smtpd", cert)
	echoTLS(t, m.Default(), "https", cert)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()

	for _, tc := range []struct {
		protos []string
		want   string
	}{
		{[]string{"imap"}, "imapd imap"},
		{[]string{"smtp"}, "smtpd smtp"},
		{[]string{"h2", "http/1.1"}, "https h2"},
		{nil, "https "},
		{[]string{"http/1.1", "imap"}, "imapd http/1.1"}, // routed by any offered protocol; the server then picks
	} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: tc.protos, ServerName: "localhost"}) //nolint:gosec // test certificate
		if err != nil {
			t.Fatalf("%v: %v", tc.protos, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != tc.want+"\n" {
			t.Errorf("ALPN %v: got %q (%v), want %q", tc.protos, line, err, tc.want)
		}
	}

	// A socket that never speaks is dropped after the hello timeout; others go on.
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("silent socket got data")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent socket held %v, want about the 1 s hello timeout", d)
	}
	// Not TLS at all: closed, nothing routed.
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = plain.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_ = plain.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _ := plain.Read(make([]byte, 64)); n > 0 {
		t.Error("plain HTTP got an answer through the TLS mux")
	}
	plain.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := m.Default().Accept(); err == nil {
		t.Error("Accept after close succeeded")
	}
}
