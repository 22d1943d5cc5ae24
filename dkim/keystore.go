// Package dkim keeps each domain's DKIM keys on disk, signs outgoing mail with them
// (Ed25519 and RSA), verifies incoming signatures and renders the DNS records to publish.
package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
)

// Algorithm names as they appear in k= of a key record.
const (
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

const (
	rsaBits       = 2048
	selectorsFile = "selectors"
)

// keyFiles maps each algorithm to its key file and selector prefix. Both keys are
// always made together: Ed25519 is the modern one (RFC 8463), RSA the one every
// verifier understands.
var keyFiles = []struct {
	algo, file, prefix string
}{
	{Ed25519, "ed25519.key", "ed"},
	{RSA, "rsa.key", "rsa"},
}

// Key is one signing key and the selector it is published under.
type Key struct {
	Selector string
	Signer   crypto.Signer // ed25519.PrivateKey or *rsa.PrivateKey
}

// Algorithm returns Ed25519 or RSA.
func (k Key) Algorithm() string {
	if _, ok := k.Signer.Public().(ed25519.PublicKey); ok {
		return Ed25519
	}
	return RSA
}

// DomainKeys are the two keys a domain signs with.
type DomainKeys struct {
	Domain  string // ASCII (A-label) form, lower case
	Ed25519 Key
	RSA     Key
}

// KeyStore keeps keys in <dir>/<domain>/{ed25519.key,rsa.key} (PKCS#8 PEM, mode 0600,
// directories 0700) and their selectors in <dir>/<domain>/selectors. A selector is
// chosen once, from the month its key was made, and never changes: it is what DNS
// publishes, so renaming it would break every signature in flight.
type KeyStore struct {
	dir string
	now func() time.Time // for tests

	mu    sync.Mutex
	cache map[string]*DomainKeys
}

// NewKeyStore returns a store rooted at dir; nothing is touched until Ensure or Load.
func NewKeyStore(dir string) *KeyStore {
	return &KeyStore{dir: dir, now: time.Now, cache: make(map[string]*DomainKeys)}
}

// Ensure returns domain's keys, creating whichever key is missing. Safe to call from
// several goroutines and processes: a key file, once written, is never replaced.
func (s *KeyStore) Ensure(domain string) (*DomainKeys, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("ensure dkim keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.cache[d]; k != nil {
		return k, nil
	}
	ddir := filepath.Join(s.dir, d)
	if err := os.MkdirAll(ddir, 0o700); err != nil {
		return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
	}
	sels, err := readSelectors(ddir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
	}
	changed := false
	for _, kf := range keyFiles {
		path := filepath.Join(ddir, kf.file)
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := createKey(path, kf.algo); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
			} else if err == nil {
				// A new key needs a new selector, even if the lost key had one: the
				// old name's DNS record holds the old public key.
				sels[kf.algo] = kf.prefix + s.now().UTC().Format("200601")
				changed = true
			}
		case err != nil:
			return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
		}
		if sels[kf.algo] == "" {
			// The key was written but its selector not (a crash in between, or
			// another process made it): the key file's age names it.
			if info == nil {
				if info, err = os.Stat(path); err != nil {
					return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
				}
			}
			sels[kf.algo] = kf.prefix + info.ModTime().UTC().Format("200601")
			changed = true
		}
	}
	if changed {
		if err := writeSelectors(ddir, d, sels); err != nil {
			return nil, fmt.Errorf("ensure dkim keys for %s: %w", d, err)
		}
	}
	k, err := loadKeys(ddir, d)
	if err != nil {
		return nil, fmt.Errorf("ensure dkim keys: %w", err)
	}
	s.cache[d] = k
	return k, nil
}

// Load returns domain's existing keys; the error wraps fs.ErrNotExist when the domain
// has none yet. Keys are cached after the first load.
func (s *KeyStore) Load(domain string) (*DomainKeys, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("load dkim keys: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.cache[d]; k != nil {
		return k, nil
	}
	k, err := loadKeys(filepath.Join(s.dir, d), d)
	if err != nil {
		return nil, fmt.Errorf("load dkim keys: %w", err)
	}
	s.cache[d] = k
	return k, nil
}

func loadKeys(ddir, domain string) (*DomainKeys, error) {
	sels, err := readSelectors(ddir)
	if err != nil {
		return nil, fmt.Errorf("read selectors of %s: %w", domain, err)
	}
	k := &DomainKeys{Domain: domain}
	for _, kf := range keyFiles {
		signer, err := readKey(filepath.Join(ddir, kf.file), kf.algo)
		if err != nil {
			return nil, err
		}
		if sels[kf.algo] == "" {
			return nil, fmt.Errorf("read selectors of %s: no %s selector: %w", domain, kf.algo, fs.ErrNotExist)
		}
		key := Key{Selector: sels[kf.algo], Signer: signer}
		if kf.algo == Ed25519 {
			k.Ed25519 = key
		} else {
			k.RSA = key
		}
	}
	return k, nil
}

// createKey generates a key and links it into place only if path does not exist yet,
// so that two processes racing to create it cannot leave DNS and disk disagreeing.
func createKey(path, algo string) error {
	var priv any
	var err error
	switch algo {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	}
	if err != nil {
		return fmt.Errorf("generate %s key: %w", algo, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode %s key: %w", algo, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return writeFile(path, data, false)
}

func readKey(path, algo string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dkim key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read dkim key %s: no PKCS#8 PEM block", path)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse dkim key %s: %w", path, err)
	}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		if algo == Ed25519 {
			return p, nil
		}
	case *rsa.PrivateKey:
		if algo == RSA {
			return p, nil
		}
	}
	return nil, fmt.Errorf("read dkim key %s: holds %T, want %s", path, priv, algo)
}

// writeFile writes data to path through a temporary file, so readers never see half
// a file. With replace false it fails with fs.ErrExist instead of replacing path.
func writeFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("put %s in place: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		_ = d.Close()
	}
	return nil
}

// readSelectors reads "<algorithm> <selector>" lines; a missing file is an empty map
// and an error wrapping fs.ErrNotExist.
func readSelectors(ddir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(ddir, selectorsFile))
	if err != nil {
		return map[string]string{}, fmt.Errorf("read selectors: %w", err)
	}
	return parseSelectors(data), nil
}

func parseSelectors(data []byte) map[string]string {
	sels := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 2 && validSelector(f[1]) {
			sels[f[0]] = f[1]
		}
	}
	return sels
}

func writeSelectors(ddir, domain string, sels map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# DKIM selectors of %s, as published in DNS: never rename them.\n", domain)
	for _, kf := range keyFiles {
		fmt.Fprintf(&b, "%s %s\n", kf.algo, sels[kf.algo])
	}
	return writeFile(filepath.Join(ddir, selectorsFile), []byte(b.String()), true)
}

// validSelector accepts what can stand as the first label(s) of a DNS name.
func validSelector(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range []byte(s) {
		if !isLDH(c) && c != '.' {
			return false
		}
	}
	return true
}

func isLDH(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// normalizeDomain returns domain in lower-case A-label form without a trailing dot,
// refusing anything that is not a plain DNS name: it becomes a directory name.
func normalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		d = a
	}
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("invalid domain %q", domain)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("invalid domain %q", domain)
		}
		for _, c := range []byte(label) {
			if !isLDH(c) {
				return "", fmt.Errorf("invalid domain %q", domain)
			}
		}
	}
	return d, nil
}
