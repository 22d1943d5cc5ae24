// Package peertls verifies the certificates of other mail servers, in one place for
// SMTP and HTTPS /mxdeliv: the chain against the roots, and the name.
//
// Names whose first label starts with "_" are self-signed test and LAN setups
// (chatmail spec §11.2, as chatmail relays and Delta Chat treat them): their chain is
// not checked, only that the certificate is for that name.
package peertls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// Relaxed reports whether name is one whose chain is not checked.
func Relaxed(name string) bool { return strings.HasPrefix(name, "_") }

// Verify checks the peer certificate of cs for name against roots (nil: the system
// roots); for a Relaxed name, or when domain (the recipient domain that led there)
// is Relaxed, only the name is checked.
func Verify(cs tls.ConnectionState, name, domain string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if Relaxed(name) || Relaxed(domain) {
		return leaf.VerifyHostname(name)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}
