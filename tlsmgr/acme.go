package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// Prefixes of the per-domain web names that mail clients and senders look up.
var domainPrefixes = []string{"mta-sts.", "autoconfig.", "autodiscover."}

const (
	// firstACMERetry is the wait after a failed attempt; each further failure doubles
	// it, up to maxACMERetry. autocert remembers a failure for a minute, answering
	// "missing certificate" without asking the CA, so a retry any sooner would only
	// replace the real error with that one.
	firstACMERetry = time.Minute + 2*time.Second
	maxACMERetry   = time.Hour
)

// obtainState is what the manager knows about getting one certificate (an autocert
// cache key: the name, with "+rsa" for the RSA certificate of clients without ECDSA).
type obtainState struct {
	running  bool
	failures int
	next     time.Time // no new attempt before this, after a failure
}

// hostPolicy allows certificates for our names and for the MTA-STS, autoconfig and
// autodiscover names of the domains we serve, so that nobody can make us request certificates for
// arbitrary names by sending them as SNI.
func (m *Manager) hostPolicy(ctx context.Context, host string) error {
	// An HTTP-01 request names the port in Host when the CA was told one, as behind
	// a proxy or in tests.
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = normalize(host)
	if slices.Contains(m.names, host) {
		return nil
	}
	for _, p := range domainPrefixes {
		d, ok := strings.CutPrefix(host, p)
		if !ok || m.domains == nil {
			continue
		}
		if ctx == nil {
			ctx = context.Background()
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
//
// A handshake never waits for the CA: until a certificate for its name is at hand (in
// memory or in the cache directory), it gets the self-signed fallback while the
// certificate is obtained in the background, so that STARTTLS and IMAPS keep working
// on a first start, and while the CA cannot be reached.
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
	fallback := m.fallback()
	// autocert keeps an RSA certificate beside the ECDSA one for clients that cannot
	// use ECDSA; the fallback's key is ECDSA, so it tells which one this client needs.
	rsa := hello.SupportsCertificate(fallback) != nil
	key := cacheKey(name, rsa)
	if !m.ready(key, time.Now()) {
		m.obtain(name, rsa)
		m.noteFallback(name)
		return fallback, nil
	}
	c, err := m.acm.GetCertificate(hello)
	if err != nil {
		m.log.Warn("get ACME certificate; serving the self-signed fallback", "name", name, "err", err)
		m.setErr(name, err)
		return fallback, nil
	}
	m.served(name, key, c.Leaf)
	return c, nil
}

// cacheKey is autocert's name for a certificate in its cache.
func cacheKey(name string, rsa bool) string {
	if rsa {
		return name + "+rsa"
	}
	return name
}

// ready reports whether the certificate under key can be served without asking the
// CA: one this process served and that has not expired, or one in the cache.
func (m *Manager) ready(key string, now time.Time) bool {
	m.statusMu.Lock()
	leaf := m.leaves[key]
	m.statusMu.Unlock()
	if leaf == nil {
		leaf = cachedLeaf(m.acmeCache, key)
	}
	return leaf != nil && now.Before(leaf.NotAfter)
}

// served records the certificate handed out for name.
func (m *Manager) served(name, key string, leaf *x509.Certificate) {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	m.leaves[key] = leaf
	if m.issued[name] != leaf {
		m.issued[name] = leaf
		delete(m.lastErr, name)
		delete(m.fellBack, name)
	}
}

// noteFallback logs, once per name until a certificate comes, that the name is
// served the self-signed certificate.
func (m *Manager) noteFallback(name string) {
	m.statusMu.Lock()
	first := !m.fellBack[name]
	m.fellBack[name] = true
	m.statusMu.Unlock()
	if first {
		m.log.Warn("no ACME certificate yet: serving the self-signed fallback until the CA issues one", "name", name)
	}
}

// obtain gets the certificate for name from the CA in the background, unless an
// attempt is running or a failed one is too recent.
func (m *Manager) obtain(name string, rsa bool) {
	key := cacheKey(name, rsa)
	now := time.Now()
	m.obtainMu.Lock()
	st := m.obtaining[key]
	if st == nil {
		st = &obtainState{}
		m.obtaining[key] = st
	}
	if st.running || now.Before(st.next) {
		m.obtainMu.Unlock()
		return
	}
	st.running = true
	m.obtainMu.Unlock()

	go func() {
		start := time.Now()
		// autocert picks the key type from the ClientHello's cipher suites.
		suite := tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
		if rsa {
			suite = tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
		}
		hello := &tls.ClientHelloInfo{ServerName: name, CipherSuites: []uint16{suite}}
		// autocert bounds the attempt (five minutes).
		c, err := m.acm.GetCertificate(hello)

		m.obtainMu.Lock()
		st.running = false
		if err == nil {
			st.failures, st.next = 0, time.Time{}
		} else {
			st.failures++
			st.next = time.Now().Add(retryWait(m.acmeRetry, st.failures))
		}
		next := st.next
		m.obtainMu.Unlock()

		if err != nil {
			m.log.Warn("obtain ACME certificate failed; the self-signed fallback stays in use",
				"name", name, "rsa", rsa, "err", err, "retry_at", next.Format(time.RFC3339))
			m.setErr(name, err)
			return
		}
		m.log.Info("obtained ACME certificate", "name", name, "rsa", rsa,
			"not_after", c.Leaf.NotAfter.Format(time.RFC3339), "duration", time.Since(start).Round(time.Millisecond).String())
		m.served(name, key, c.Leaf)
	}()
}

// retryWait is the wait after the failures-th failed attempt in a row: first, then
// doubled each time, at most maxACMERetry.
func retryWait(first time.Duration, failures int) time.Duration {
	d := first
	for i := 1; i < failures && d < maxACMERetry; i++ {
		d *= 2
	}
	return min(d, max(first, maxACMERetry))
}

// Run obtains the certificates of the server's own names as soon as it starts, rather
// than at the first handshake, and retries failed attempts, until ctx ends. It
// returns at once in modes other than ACME.
func (m *Manager) Run(ctx context.Context) {
	if m.acm == nil {
		return
	}
	t := time.NewTicker(m.acmeRetry)
	defer t.Stop()
	for {
		now := time.Now()
		for _, n := range m.names {
			if !m.ready(n, now) {
				m.obtain(n, false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cachedLeaf reads the certificate autocert keeps under key in its cache directory, or
// returns nil. The file holds the private key followed by the chain, leaf first.
func cachedLeaf(dir, key string) *x509.Certificate {
	data, err := os.ReadFile(filepath.Join(dir, key))
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
