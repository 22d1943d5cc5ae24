package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
)

// Prefixes of the per-domain web names that mail clients and senders look up.
var domainPrefixes = []string{"mta-sts.", "autoconfig."}

// hostPolicy allows certificates for our names and for the MTA-STS and autoconfig
// names of the domains we serve, so that nobody can make us request certificates for
// arbitrary names by sending them as SNI.
func (m *Manager) hostPolicy(ctx context.Context, host string) error {
	host = normalize(host)
	if slices.Contains(m.names, host) {
		return nil
	}
	for _, p := range domainPrefixes {
		d, ok := strings.CutPrefix(host, p)
		if !ok || m.domains == nil {
			continue
		}
		domains, err := m.domains(ctx)
		if err != nil {
			return fmt.Errorf("list domains for certificate policy: %w", err)
		}
		for _, dd := range domains {
			if normalize(dd) == d {
				return nil
			}
		}
	}
	return fmt.Errorf("tlsmgr: %q is not a name of this server", host)
}

// acmeCertificate serves ACME certificates. Handshakes without SNI, or with a name we
// do not get certificates for, receive the hostname's certificate: mail clients in
// STARTTLS send no SNI, and senders that verify nothing should still get encryption.
func (m *Manager) acmeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		return m.acm.GetCertificate(hello) // a CA's TLS-ALPN-01 validation
	}
	name := normalize(hello.ServerName)
	if name == "" || m.hostPolicy(hello.Context(), name) != nil {
		h := *hello
		h.ServerName = m.hostname
		hello, name = &h, m.hostname
	}
	c, err := m.acm.GetCertificate(hello)
	if err != nil {
		m.log.Warn("get ACME certificate", "name", name, "err", err)
		m.setErr(name, err)
		return nil, err
	}
	m.statusMu.Lock()
	if m.issued[name] != c.Leaf {
		m.issued[name] = c.Leaf
		delete(m.lastErr, name)
	}
	m.statusMu.Unlock()
	return c, nil
}

// cachedLeaf reads the certificate autocert keeps for name in its cache directory, or
// returns nil. The file holds the private key followed by the chain, leaf first.
func cachedLeaf(dir, name string) *x509.Certificate {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return leaf
		}
	}
}
