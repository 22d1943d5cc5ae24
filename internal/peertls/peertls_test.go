package peertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// selfSigned is a certificate for names signed by nobody anyone trusts.
func selfSigned(t *testing.T, names ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerify(t *testing.T) {
	lan := selfSigned(t, "_lan.example")
	mx := selfSigned(t, "mx.example.org")
	trusted := x509.NewCertPool()
	trusted.AddCert(mx)
	for _, tc := range []struct {
		name         string
		cert         *x509.Certificate
		host, domain string
		roots        *x509.CertPool
		ok           bool
	}{
		{"underscore host, self-signed, right name", lan, "_lan.example", "", nil, true},
		{"underscore host, wrong name", lan, "_other.example", "", nil, false},
		{"underscore recipient domain, MX named otherwise", mx, "mx.example.org", "_lan.example", nil, true},
		{"ordinary host, self-signed", mx, "mx.example.org", "example.org", nil, false},
		{"ordinary host, trusted root", mx, "mx.example.org", "example.org", trusted, true},
		{"ordinary host, trusted root, wrong name", mx, "mail.example.org", "example.org", trusted, false},
	} {
		err := Verify(tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.cert}}, tc.host, tc.domain, tc.roots)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if err := Verify(tls.ConnectionState{}, "x", "", nil); err == nil {
		t.Error("no certificate verified")
	}
}
