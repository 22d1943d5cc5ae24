package queue

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/queue/internal/testpki"
	"github.com/coibox/coibox/store"
)

// tlsaRR is a TLSA record for mx.b.test on port 25 describing c.
func tlsaRR(usage, selector, matching int, c *x509.Certificate) string {
	data := c.Raw
	if selector == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch matching {
	case 1:
		s := sha256.Sum256(data)
		data = s[:]
	case 2:
		s := sha512.Sum512(data)
		data = s[:]
	}
	return "_25._tcp.mx.b.test. 60 IN TLSA " + fmt.Sprintf("%d %d %d", usage, selector, matching) +
		" " + hex.EncodeToString(data)
}

func TestDANE(t *testing.T) {
	const enforce = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n"
	selfSigned := func(*testpki.CA) *tls.Certificate { c := testpki.SelfSigned(t, "other.test"); return &c }
	other := testpki.SelfSigned(t, "mx.b.test").Leaf
	tests := []struct {
		name string
		cert func(ca *testpki.CA) *tls.Certificate
		// tlsa gives the TLSA records for the certificate the server has.
		tlsa func(ca *testpki.CA, cert *tls.Certificate) []string
		// insecure leaves the named answers without the AD bit.
		insecure  []string
		servfail  bool   // the TLSA lookup fails
		sts       string // MTA-STS policy, if any
		delivered bool
		conn      string // the connection metric of a delivery
		reason    string
	}{
		{
			name:      "DANE-EE SPKI SHA-256 matches a self-signed certificate for another name",
			cert:      selfSigned,
			tlsa:      func(_ *testpki.CA, c *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, c.Leaf)} },
			delivered: true, conn: "verified",
		},
		{
			name: "DANE-EE full certificate SHA-512 among unusable records",
			cert: selfSigned,
			tlsa: func(_ *testpki.CA, c *tls.Certificate) []string {
				return []string{tlsaRR(1, 1, 1, other), tlsaRR(3, 0, 2, c.Leaf), "_25._tcp.mx.b.test. 60 IN TLSA 3 1 1 00ff"}
			},
			delivered: true, conn: "verified",
		},
		{
			name:   "DANE-EE mismatch",
			cert:   selfSigned,
			tlsa:   func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, other)} },
			reason: "DANE: certificate of mx.b.test matches no TLSA record",
		},
		{
			name:      "DANE-TA matches the CA the server sends",
			cert:      func(ca *testpki.CA) *tls.Certificate { c := ca.LeafWithCA(t, "mx.b.test"); return &c },
			tlsa:      func(ca *testpki.CA, _ *tls.Certificate) []string { return []string{tlsaRR(2, 0, 1, ca.Cert())} },
			delivered: true, conn: "verified",
		},
		{
			name:      "DANE-TA accepts the destination domain as name",
			cert:      func(ca *testpki.CA) *tls.Certificate { c := ca.LeafWithCA(t, "b.test"); return &c },
			tlsa:      func(ca *testpki.CA, _ *tls.Certificate) []string { return []string{tlsaRR(2, 1, 1, ca.Cert())} },
			delivered: true, conn: "verified",
		},
		{
			name:   "DANE-TA with a certificate for another name",
			cert:   func(ca *testpki.CA) *tls.Certificate { c := ca.LeafWithCA(t, "other.test"); return &c },
			tlsa:   func(ca *testpki.CA, _ *tls.Certificate) []string { return []string{tlsaRR(2, 0, 1, ca.Cert())} },
			reason: "DANE: certificate of mx.b.test not valid under its TLSA trust anchor: x509: certificate is valid for other.test",
		},
		{
			name:   "DANE-TA whose anchor the server does not send",
			cert:   func(ca *testpki.CA) *tls.Certificate { c := ca.Leaf(t, "mx.b.test"); return &c },
			tlsa:   func(ca *testpki.CA, _ *tls.Certificate) []string { return []string{tlsaRR(2, 0, 1, ca.Cert())} },
			reason: "DANE: certificate of mx.b.test matches no TLSA record",
		},
		{
			name:   "no STARTTLS",
			cert:   func(*testpki.CA) *tls.Certificate { return nil },
			tlsa:   func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, other)} },
			reason: "DANE: mx.b.test offers no STARTTLS",
		},
		{
			name:     "TLSA lookup failure keeps the message",
			cert:     selfSigned,
			tlsa:     func(*testpki.CA, *tls.Certificate) []string { return nil },
			servfail: true,
			reason:   "DANE: look up TLSA of mx.b.test",
		},
		{
			name:      "insecure TLSA answer is ignored",
			cert:      selfSigned,
			tlsa:      func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, other)} },
			insecure:  []string{"_25._tcp.mx.b.test"},
			delivered: true, conn: "unverified",
		},
		{
			name:      "insecure MX answer is ignored",
			cert:      selfSigned,
			tlsa:      func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, other)} },
			insecure:  []string{"b.test"},
			delivered: true, conn: "unverified",
		},
		{
			name:      "insecure address answer is ignored",
			cert:      selfSigned,
			tlsa:      func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, other)} },
			insecure:  []string{"mx.b.test"},
			delivered: true, conn: "unverified",
		},
		{
			name:      "PKIX-EE only: TLS without authentication",
			cert:      selfSigned,
			tlsa:      func(_ *testpki.CA, c *tls.Certificate) []string { return []string{tlsaRR(1, 1, 1, c.Leaf)} },
			delivered: true, conn: "unverified",
		},
		{
			// RFC 7672 2.2: records that are all unusable still make TLS mandatory.
			name:   "PKIX-EE only and no STARTTLS",
			cert:   func(*testpki.CA) *tls.Certificate { return nil },
			tlsa:   func(*testpki.CA, *tls.Certificate) []string { return []string{tlsaRR(1, 1, 1, other)} },
			reason: "DANE: mx.b.test publishes TLSA records (none usable) but offers no STARTTLS",
		},
		{
			name:      "DANE takes precedence over MTA-STS",
			cert:      selfSigned,
			tlsa:      func(_ *testpki.CA, c *tls.Certificate) []string { return []string{tlsaRR(3, 1, 1, c.Leaf)} },
			sts:       enforce,
			delivered: true, conn: "verified",
		},
		{
			name:   "MTA-STS still applies without usable TLSA records",
			cert:   selfSigned,
			tlsa:   func(_ *testpki.CA, c *tls.Certificate) []string { return []string{tlsaRR(0, 1, 1, c.Leaf)} },
			sts:    enforce,
			reason: "MTA-STS policy enforce: certificate for mx.b.test not valid",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Only the policy server's certificate is to verify against the test CA:
			// the MX's must pass by DANE or not at all.
			e := newEnv(t, func(o *Options) {
				if tc.sts == "" {
					o.RootCAs = x509.NewCertPool()
				}
			})
			cert := tc.cert(e.ca)
			b := e.mx("b.test", "192.0.2.2", sinkOpts{cert: cert})
			e.dns.Add(strings.Join(tc.tlsa(e.ca, cert), "\n"))
			for _, n := range []string{"b.test", "mx.b.test", "_25._tcp.mx.b.test"} {
				if !slices.Contains(tc.insecure, n) {
					e.dns.Secure(n)
				}
			}
			if tc.servfail {
				e.dns.ServFail("_25._tcp.mx.b.test")
			}
			if tc.sts != "" {
				ps := newPolicyServer(t, e.ca.Leaf(t, "mta-sts.b.test"), tc.sts)
				e.dns.Add("mta-sts.b.test. 60 IN A 192.0.2.80\n_mta-sts.b.test. 60 IN TXT \"v=STSv1; id=1\"")
				e.routeAddr("192.0.2.80:443", ps)
			}
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "dane"))
			e.drain()
			if tc.delivered {
				if got := b.received(); len(got) != 1 || !got[0].TLS {
					t.Fatalf("delivered %+v", got)
				}
				if e.stat("conn:"+tc.conn) != 1 {
					t.Errorf("connection metrics %v, want one %s", e.stats, tc.conn)
				}
				return
			}
			if len(b.received()) != 0 {
				t.Fatal("delivered despite DANE")
			}
			r := e.rcpt("bob@b.test")
			if r.State != store.RcptPending || !has(r.LastError, tc.reason) {
				t.Fatalf("recipient %+v\nwant pending with %q", r, tc.reason)
			}
		})
	}
}

// TestDANEImplicitMX: without MX records, the domain's own validated addresses and
// TLSA records bring DANE.
func TestDANEImplicitMX(t *testing.T) {
	e := newEnv(t, nil)
	cert := testpki.SelfSigned(t, "c.test")
	s := newSink(t, sinkOpts{cert: &cert})
	e.route("192.0.2.3", s)
	other := testpki.SelfSigned(t, "c.test").Leaf
	e.dns.Add("c.test. 60 IN A 192.0.2.3\n" + strings.Replace(tlsaRR(3, 1, 1, other), "mx.b.test", "c.test", 1))
	e.dns.Secure("c.test")
	e.dns.Secure("_25._tcp.c.test")
	e.enqueue("alice@a.test", []string{"carol@c.test"}, message("alice@a.test", "carol@c.test", "implicit"))
	e.drain()
	if s.count() != 0 {
		t.Fatal("delivered to a certificate no TLSA record matches")
	}
	if r := e.rcpt("carol@c.test"); !has(r.LastError, "DANE: certificate of c.test matches no TLSA record") {
		t.Fatalf("recipient %+v", r)
	}
}

func TestUsableTLSA(t *testing.T) {
	sum := make([]byte, 32)
	recs := []dnsx.TLSA{
		{Usage: 3, Selector: 1, MatchingType: 1, Data: sum},
		{Usage: 2, Selector: 0, MatchingType: 0, Data: []byte{1}},
		{Usage: 1, Selector: 1, MatchingType: 1, Data: sum},
		{Usage: 0, Selector: 0, MatchingType: 1, Data: sum},
		{Usage: 3, Selector: 2, MatchingType: 1, Data: sum},
		{Usage: 3, Selector: 1, MatchingType: 3, Data: sum},
		{Usage: 3, Selector: 1, MatchingType: 2, Data: sum},
		{Usage: 3, Selector: 1, MatchingType: 0},
	}
	if got := usableTLSA(recs); len(got) != 2 || got[0].Usage != 3 || got[1].Usage != 2 {
		t.Fatalf("usable %+v", got)
	}
}
