package tlsmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	// selfSignedLifetime stays under the 398 days some clients (Apple's) accept.
	selfSignedLifetime = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a self-signed certificate is replaced.
	renewBefore = 30 * 24 * time.Hour
	// issuerOrg marks our certificates, so Status shows where they came from.
	issuerOrg = "coibox self-signed"
)

// selfSignedIPs are covered so that clients connecting to 127.0.0.1 or ::1 by address
// can verify the certificate once they trust it.
var selfSignedIPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}

func (m *Manager) selfSignedPaths() (crt, key string) {
	d := filepath.Join(m.dir, "tls")
	return filepath.Join(d, "selfsigned.crt"), filepath.Join(d, "selfsigned.key")
}

// selfSignedNames are the DNS names the self-signed certificate covers: ours, every
// served mail domain (its /new and onboarding page are served under its own name, and
// chatmail peers check the name even where they skip the chain: chatmail spec §11.2),
// plus localhost, for clients on the same machine. A domain added later is covered
// from the next refresh.
func (m *Manager) selfSignedNames() []string {
	names := slices.Clone(m.names)
	if m.domains != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if ds, err := m.domains(ctx); err == nil {
			for _, d := range ds {
				if d = normalize(d); d != "" && !slices.Contains(names, d) {
					names = append(names, d)
				}
			}
		} else {
			m.log.Warn("self-signed certificate: list domains", "err", err)
		}
	}
	if !slices.Contains(names, "localhost") {
		names = append(names, "localhost")
	}
	return names
}

// loadOrCreateSelfSigned reuses the persisted certificate if it covers the current names
// and is not close to expiry, so that clients that accepted it keep working across
// restarts; otherwise it makes and persists a new one.
func (m *Manager) loadOrCreateSelfSigned(now time.Time) error {
	crtPath, keyPath := m.selfSignedPaths()
	names := m.selfSignedNames()

	c, err := tls.LoadX509KeyPair(crtPath, keyPath)
	switch {
	case err == nil && sameNames(c.Leaf, names) && !needsRenewal(c.Leaf, now):
		m.cert.Store(&c)
		m.setErr("", nil)
		m.log.Debug("reuse self-signed certificate", "path", crtPath, "not_after", c.Leaf.NotAfter)
		return nil
	case err == nil:
		m.log.Info("replace self-signed certificate", "reason", "names changed or expiry near", "path", crtPath)
	case errors.Is(err, os.ErrNotExist):
		m.log.Info("create self-signed certificate", "path", crtPath)
	default:
		m.log.Warn("replace unreadable self-signed certificate", "path", crtPath, "err", err)
	}

	crtPEM, keyPEM, err := makeSelfSigned(m.hostname, names, now)
	if err == nil {
		err = writeSelfSigned(crtPath, keyPath, crtPEM, keyPEM)
	}
	if err == nil {
		c, err = tls.X509KeyPair(crtPEM, keyPEM)
	}
	if err != nil {
		m.setErr("", err)
		return err
	}
	m.cert.Store(&c)
	m.setErr("", nil)
	return nil
}

// needsRenewal reports whether leaf expires within renewBefore of now.
func needsRenewal(leaf *x509.Certificate, now time.Time) bool {
	return leaf == nil || now.Add(renewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore)
}

// sameNames reports whether leaf covers exactly names and the loopback addresses.
func sameNames(leaf *x509.Certificate, names []string) bool {
	if leaf == nil || len(leaf.IPAddresses) != len(selfSignedIPs) {
		return false
	}
	for i, ip := range leaf.IPAddresses {
		if !ip.Equal(selfSignedIPs[i]) {
			return false
		}
	}
	a, b := slices.Clone(leaf.DNSNames), slices.Clone(names)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// makeSelfSigned returns a PEM certificate and PKCS #8 key for an ECDSA P-256
// certificate covering names and the loopback addresses, valid from now.
func makeSelfSigned(hostname string, names []string, now time.Time) (crtPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{issuerOrg}},
		// Backdated an hour for clients whose clocks run slow.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           selfSignedIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeSelfSigned stores the pair; each file is replaced atomically, and a crash between
// the two leaves a mismatched pair that the next start detects and replaces.
func writeSelfSigned(crtPath, keyPath string, crtPEM, keyPEM []byte) error {
	if err := os.MkdirAll(filepath.Dir(crtPath), 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(crtPath, crtPEM, 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	// CreateTemp makes the file 0600; Chmod sets the intended mode regardless of umask.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
