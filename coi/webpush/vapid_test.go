package webpush

import (
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// TestLoadKey: made once, 0600, the same after a restart, after a restore of a
// backup copy, and for concurrent first starts (§8.2).
func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	k1, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	oxcore := regexp.MustCompile(`^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/\r\n]+={0,3}\r?\n-----END PUBLIC KEY-----$`)
	if pem := k1.PublicPEM(); len(pem) != 177 || !oxcore.MatchString(pem) {
		t.Fatalf("vapid value (%d bytes): %q", len(pem), pem)
	}
	if len(b64url(t, k1.K())) != 65 {
		t.Fatalf("k = %s is not a 65-byte point", k1.K())
	}

	// A restart reads the same key.
	k2, err := LoadKey(path)
	if err != nil || k2.K() != k1.K() || k2.PublicPEM() != k1.PublicPEM() {
		t.Fatalf("reloaded key differs: %v", err)
	}

	// A backup restored with a careless mode: same key, mode tightened.
	restored := filepath.Join(t.TempDir(), KeyFileName)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(restored, data, 0o644); err != nil {
		t.Fatal(err)
	}
	k3, err := LoadKey(restored)
	if err != nil || k3.K() != k1.K() {
		t.Fatalf("restored key differs: %v", err)
	}
	if info, _ := os.Stat(restored); info.Mode().Perm() != 0o600 {
		t.Fatalf("restored key mode %v", info.Mode().Perm())
	}

	// Concurrent first starts agree on one key.
	path = filepath.Join(t.TempDir(), KeyFileName)
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := LoadKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k.K()
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] {
			t.Fatalf("concurrent LoadKey made different keys: %v", keys)
		}
	}

	// A damaged file is an error, never silently replaced.
	bad := filepath.Join(t.TempDir(), KeyFileName)
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadKey(bad); err == nil {
		t.Fatal("damaged key file accepted")
	}
	if got, _ := os.ReadFile(bad); string(got) != "not a key" {
		t.Fatal("damaged key file replaced")
	}
	if s := k1.String(); s != "webpush.Key("+k1.K()+")" {
		t.Fatalf("String() = %s", s)
	}
}
