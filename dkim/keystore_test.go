package dkim

import (
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func newStore(t *testing.T, now time.Time) *KeyStore {
	t.Helper()
	s := NewKeyStore(filepath.Join(t.TempDir(), "dkim"))
	s.now = func() time.Time { return now }
	return s
}

func TestEnsureCreatesKeys(t *testing.T) {
	s := newStore(t, time.Date(2026, 7, 14, 12, 0, 0, 0, time.UTC))
	k, err := s.Ensure("Example.ORG.")
	if err != nil {
		t.Fatal(err)
	}
	if k.Domain != "example.org" || k.Ed25519.Selector != "ed202607" || k.RSA.Selector != "rsa202607" {
		t.Errorf("keys = %s %s %s", k.Domain, k.Ed25519.Selector, k.RSA.Selector)
	}
	if _, ok := k.Ed25519.Signer.(ed25519.PrivateKey); !ok {
		t.Errorf("ed25519 signer is %T", k.Ed25519.Signer)
	}
	if r, ok := k.RSA.Signer.(*rsa.PrivateKey); !ok || r.N.BitLen() != 2048 {
		t.Errorf("rsa signer is %T", k.RSA.Signer)
	}
	for _, tt := range []struct {
		path string
		mode fs.FileMode
	}{
		{"example.org", fs.ModeDir | 0o700},
		{"example.org/ed25519.key", 0o600},
		{"example.org/rsa.key", 0o600},
		{"example.org/selectors", 0o600},
	} {
		info, err := os.Stat(filepath.Join(s.dir, tt.path))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, info.Mode(), tt.mode)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(s.dir, "example.org", ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// A later process, months later, must see the same keys under the same names.
	later := NewKeyStore(s.dir)
	later.now = func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }
	for name, get := range map[string]func(string) (*DomainKeys, error){"Load": later.Load, "Ensure": later.Ensure} {
		k2, err := get("example.org")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k2.Ed25519.Selector != "ed202607" || k2.RSA.Selector != "rsa202607" ||
			!k2.Ed25519.Signer.(ed25519.PrivateKey).Equal(k.Ed25519.Signer) ||
			!k2.RSA.Signer.(*rsa.PrivateKey).Equal(k.RSA.Signer) {
			t.Errorf("%s: keys changed", name)
		}
	}
}

// A key lost from disk is made anew under a new selector: the old selector's DNS
// record still holds the old public key.
func TestEnsureReplacesLostKey(t *testing.T) {
	s := newStore(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	if _, err := s.Ensure("a.test"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.dir, "a.test", "ed25519.key")); err != nil {
		t.Fatal(err)
	}
	s2 := NewKeyStore(s.dir)
	s2.now = func() time.Time { return time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC) }
	k, err := s2.Ensure("a.test")
	if err != nil {
		t.Fatal(err)
	}
	if k.Ed25519.Selector != "ed202609" || k.RSA.Selector != "rsa202607" {
		t.Errorf("selectors = %s %s", k.Ed25519.Selector, k.RSA.Selector)
	}
}

// A key whose selector was never recorded (a crash between the two writes) is named
// after the key file's date.
func TestEnsureRecoversSelector(t *testing.T) {
	s := newStore(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	if _, err := s.Ensure("a.test"); err != nil {
		t.Fatal(err)
	}
	ddir := filepath.Join(s.dir, "a.test")
	if err := os.Remove(filepath.Join(ddir, "selectors")); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)
	for _, f := range []string{"ed25519.key", "rsa.key"} {
		if err := os.Chtimes(filepath.Join(ddir, f), when, when); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewKeyStore(s.dir).Load("a.test"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load without selectors: %v, want ErrNotExist", err)
	}
	k, err := NewKeyStore(s.dir).Ensure("a.test")
	if err != nil {
		t.Fatal(err)
	}
	if k.Ed25519.Selector != "ed202503" || k.RSA.Selector != "rsa202503" {
		t.Errorf("selectors = %s %s", k.Ed25519.Selector, k.RSA.Selector)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([]*DomainKeys, 4)
	for i := range keys {
		// Separate stores stand in for separate processes sharing the directory.
		s := NewKeyStore(dir)
		wg.Go(func() {
			k, err := s.Ensure("race.test")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	final, err := NewKeyStore(dir).Load("race.test")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k == nil || !k.RSA.Signer.(*rsa.PrivateKey).Equal(final.RSA.Signer) ||
			!k.Ed25519.Signer.(ed25519.PrivateKey).Equal(final.Ed25519.Signer) {
			t.Errorf("store %d got other keys than the ones on disk", i)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := newStore(t, time.Now()).Load("none.test"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"example.org", "example.org", true},
		{"EXAMPLE.org.", "example.org", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		{"_test.example", "_test.example", true},
		{"", "", false},
		{".", "", false},
		{"..", "", false},
		{"../etc", "", false},
		{"a/b", "", false},
		{"a..b", "", false},
		{"a b", "", false},
		{"a\x00b", "", false},
	}
	for _, tt := range tests {
		got, err := normalizeDomain(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("normalizeDomain(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestParseSelectors(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"# c\ned25519 ed202607\nrsa rsa202607\n", map[string]string{"ed25519": "ed202607", "rsa": "rsa202607"}},
		{"  rsa   r1  \r\n\n", map[string]string{"rsa": "r1"}},
		{"rsa r1 extra\ned25519 bad/sel\n", map[string]string{}},
	}
	for _, tt := range tests {
		got := parseSelectors([]byte(tt.in))
		if len(got) != len(tt.want) {
			t.Errorf("parseSelectors(%q) = %v, want %v", tt.in, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("parseSelectors(%q)[%s] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}
