package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"

	"github.com/coibox/coibox/dnsx"
)

// daneResolver is what DANE needs beyond Resolver: answers that say whether they
// were DNSSEC-validated. *dnsx.Resolver has it; a Resolver without it never uses DANE.
type daneResolver interface {
	LookupMXSecure(ctx context.Context, domain string) ([]*net.MX, bool, error)
	LookupIPSecure(ctx context.Context, host string) ([]net.IP, bool, error)
	LookupTLSA(ctx context.Context, name string) ([]dnsx.TLSA, bool, error)
}

// TLSA certificate usages, selectors and matching types (RFC 6698 2.1, RFC 7218).
const (
	daneTA = 2 // DANE-TA: a trust anchor of the server's chain
	daneEE = 3 // DANE-EE: the server's own certificate or key

	selCert = 0
	selSPKI = 1

	matchFull   = 0
	matchSHA256 = 1
	matchSHA512 = 2
)

// usableTLSA keeps the records SMTP can use: DANE-TA and DANE-EE with a known
// selector and matching type and data of the right length. PKIX-TA and PKIX-EE are
// unusable for SMTP (RFC 7672 3.1.3).
func usableTLSA(recs []dnsx.TLSA) []dnsx.TLSA {
	var out []dnsx.TLSA
	for _, r := range recs {
		if r.Usage != daneTA && r.Usage != daneEE || r.Selector > selSPKI {
			continue
		}
		switch {
		case r.MatchingType == matchFull && len(r.Data) > 0,
			r.MatchingType == matchSHA256 && len(r.Data) == sha256.Size,
			r.MatchingType == matchSHA512 && len(r.Data) == sha512.Size:
			out = append(out, r)
		}
	}
	return out
}

// daneTLSA returns the usable TLSA records of host when the DANE lookups apply:
// the MX RRset (secure) and host's addresses (ipSecure) were validated and so is the
// TLSA answer. nil means no DANE for host; an empty, non-nil list means records
// exist but none is usable, which still makes TLS mandatory, unauthenticated (RFC
// 7672 2.2); a failure means the host must not be used now, since a TLSA answer that
// cannot be had may be an attacker's doing (RFC 7672 2.2).
func (q *Queue) daneTLSA(ctx context.Context, dr daneResolver, host string, secure bool) ([]dnsx.TLSA, *failure) {
	if !secure {
		return nil, nil
	}
	name := "_" + strconv.Itoa(q.opts.RemotePort) + "._tcp." + host
	recs, ok, err := dr.LookupTLSA(ctx, name)
	switch {
	case dnsx.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, tempf("4.7.5", "DANE: look up TLSA of %s: %v", host, err)
	case !ok:
		return nil, nil
	}
	usable := usableTLSA(recs)
	if usable == nil && len(recs) > 0 {
		usable = []dnsx.TLSA{}
	}
	return usable, nil
}

// errNoTLSAMatch is the verification error when no TLSA record fits the peer.
var errNoTLSAMatch = errors.New("matches no TLSA record")

// verifyDANE checks the peer's certificates against the TLSA records of host (RFC
// 7672 3.1): a DANE-EE record must match the end-entity certificate, names and dates
// ignored; a DANE-TA record must match a certificate the server sent (or be a whole
// certificate), and the end-entity certificate must chain to it and be valid for
// host or, failing that, for domain.
func verifyDANE(cs tls.ConnectionState, host, domain string, recs []dnsx.TLSA) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("no certificate")
	}
	var anchors []*x509.Certificate
	for _, r := range recs {
		switch r.Usage {
		case daneEE:
			if tlsaMatch(r, certs[0]) {
				return nil
			}
		case daneTA:
			for _, c := range certs {
				if tlsaMatch(r, c) {
					anchors = append(anchors, c)
				}
			}
			if r.Selector == selCert && r.MatchingType == matchFull {
				if c, err := x509.ParseCertificate(r.Data); err == nil {
					anchors = append(anchors, c)
				}
			}
		}
	}
	if len(anchors) == 0 {
		return errNoTLSAMatch
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range anchors {
		roots.AddCert(c)
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	var err error
	for _, name := range []string{host, domain} {
		if _, err = certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err == nil {
			return nil
		}
	}
	return err
}

// tlsaMatch reports whether r's association data describes c.
func tlsaMatch(r dnsx.TLSA, c *x509.Certificate) bool {
	data := c.Raw
	if r.Selector == selSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case matchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case matchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return bytes.Equal(data, r.Data)
}
