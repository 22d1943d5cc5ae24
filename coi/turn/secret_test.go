package turn

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

func TestLoadSecretCreatesOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SecretFileName)
	s1, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || info.Size() != secretSize {
		t.Fatalf("secret file mode %v size %d, want 0600 and %d", info.Mode().Perm(), info.Size(), secretSize)
	}
	s2, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.key, s2.key) {
		t.Fatal("second load returned a different secret")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("data directory holds %v, want only %s", entries, SecretFileName)
	}
}

func TestLoadSecretConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), SecretFileName)
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadSecret(path)
			errs[i] = err
			if err == nil {
				keys[i] = s.key
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadSecret %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got a different secret", i)
		}
	}
}

func TestLoadSecretExisting(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		wantErr bool
	}{
		{"valid, loose mode tightened", bytes.Repeat([]byte{7}, secretSize), 0o644, false},
		{"valid", bytes.Repeat([]byte{9}, secretSize), 0o600, false},
		{"truncated", []byte("short"), 0o600, true},
		{"empty", nil, 0o600, true},
		{"too long", bytes.Repeat([]byte{1}, secretSize+1), 0o600, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), SecretFileName)
			if err := os.WriteFile(path, tc.content, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // umask aside
				t.Fatal(err)
			}
			s, err := LoadSecret(path)
			if tc.wantErr {
				if err == nil {
					t.Fatal("LoadSecret succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.key, tc.content) {
				t.Fatal("loaded key differs from the file")
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v after load, want 0600", info.Mode().Perm())
			}
		})
	}
}

func TestSecretRedacted(t *testing.T) {
	s, err := NewSecret([]byte("hunter2-hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if out := fmt.Sprintf("%v %+v %s", s, s, s); strings.Contains(out, "hunter2") {
		t.Fatalf("secret printed: %s", out)
	}
	if _, err := NewSecret(nil); err == nil {
		t.Fatal("NewSecret(nil) succeeded")
	}
}

// TestCredentialsMatchPion checks the derivation against pion's own TURN REST
// helpers: the password pion generates for a username, and the key pion's
// long-term auth handler expects for ours.
func TestCredentialsMatchPion(t *testing.T) {
	s, err := NewSecret([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	pionUser, pionPass, err := turn.GenerateLongTermCredentials(string(s.key), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.password(pionUser); got != pionPass {
		t.Fatalf("password(%s) = %s, pion says %s", pionUser, got, pionPass)
	}

	user, pass, _ := s.Credentials(time.Now())
	const realm = "test.example"
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
	wantKey, ok := turn.NewLongTermAuthHandler(string(s.key), nil)(user, realm, addr)
	if !ok {
		t.Fatalf("pion refused our username %s", user)
	}
	if got := turn.GenerateAuthKey(user, realm, pass); !bytes.Equal(got, wantKey) {
		t.Fatal("pion's auth handler expects another key for our credentials")
	}
}

func TestCredentials(t *testing.T) {
	s, err := NewSecret([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Date(2025, 9, 23, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
	}{
		{"on the hour", hour},
		{"one second past", hour.Add(time.Second)},
		{"last second of the hour", hour.Add(time.Hour - time.Second)},
		{"other zone, same instant", hour.Add(30 * time.Minute).In(time.FixedZone("X", 5*3600+1800))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, pass, expiry := s.Credentials(tc.now)
			if user != strconv.FormatInt(expiry.Unix(), 10) {
				t.Fatalf("username %s, expiry %d", user, expiry.Unix())
			}
			if left := expiry.Sub(tc.now); left <= CredentialLifetime-CredentialStep || left > CredentialLifetime {
				t.Fatalf("credentials valid %v, want (%v, %v]", left, CredentialLifetime-CredentialStep, CredentialLifetime)
			}
			if expiry.Unix()%3600 != 0 {
				t.Fatalf("expiry %v not on the hour", expiry)
			}
			if raw, err := base64.StdEncoding.DecodeString(pass); err != nil || len(raw) != 20 {
				t.Fatalf("password %q is not base64 of an HMAC-SHA1", pass)
			}
			if got, err := s.check(user, tc.now); err != nil || got != pass {
				t.Fatalf("check(%s) = %q, %v; want %q", user, got, err, pass)
			}
			if _, err := s.check(user, expiry.Add(time.Second)); err == nil {
				t.Fatal("check accepted the username after its expiry")
			}
		})
	}
}

// parseMetadata splits a value the way Delta Chat core does (calls.rs
// create_ice_servers_from_metadata): at the first three colons.
func parseMetadata(t *testing.T, v string) (host string, port int, expiry int64, password string) {
	t.Helper()
	host, rest, ok1 := strings.Cut(v, ":")
	portStr, rest, ok2 := strings.Cut(rest, ":")
	ts, password, ok3 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("value %q has fewer than four fields", v)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		t.Fatalf("port in %q: %v", v, err)
	}
	expiry, err = strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("expiry in %q: %v", v, err)
	}
	return host, int(p), expiry, password
}

func TestMetadataValue(t *testing.T) {
	s, err := NewSecret([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Delta Chat refetches the key this long before the expiry it got.
	const clientMargin = 12 * time.Hour
	hour := time.Date(2025, 9, 23, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		host string
		port int
		now  time.Time
		want string // "" for no value; else only checked for being non-empty
	}{
		{"on the hour", "chat.example.org", 3478, hour, "x"},
		{"mid hour", "chat.example.org", 3478, hour.Add(29 * time.Minute), "x"},
		{"end of hour", "chat.example.org", 3478, hour.Add(time.Hour - time.Second), "x"},
		{"IPv4 host, other port", "203.0.113.5", 443, hour.Add(time.Minute), "x"},
		{"underscore domain", "_chat.example", 3478, hour, "x"},
		{"IPv6 literal", "2001:db8::1", 3478, hour, ""},
		{"bracketed IPv6", "[2001:db8::1]", 3478, hour, ""},
		{"empty host", "", 3478, hour, ""},
		{"port 0", "chat.example.org", 0, hour, ""},
		{"port too big", "chat.example.org", 65536, hour, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := s.MetadataValue(tc.host, tc.port, tc.now)
			if tc.want == "" {
				if v != "" {
					t.Fatalf("MetadataValue = %q, want none", v)
				}
				return
			}
			host, port, expiry, password := parseMetadata(t, v)
			user, pass, exp := s.Credentials(tc.now)
			if host != tc.host || port != tc.port || strconv.FormatInt(expiry, 10) != user || password != pass || expiry != exp.Unix() {
				t.Fatalf("MetadataValue = %q, want %s:%d:%s:%s", v, tc.host, tc.port, user, pass)
			}
			if left := time.Unix(expiry, 0).Sub(tc.now); left < 4*24*time.Hour {
				t.Fatalf("value valid only %v more", left)
			}

			// Stable within the hour, so repeated GETMETADATA answers agree...
			start := tc.now.Truncate(time.Hour)
			if other := s.MetadataValue(tc.host, tc.port, start); other != v {
				t.Fatalf("value at %v is %q, at the hour's start %q", tc.now, v, other)
			}
			// ...and new the next hour.
			if next := s.MetadataValue(tc.host, tc.port, start.Add(time.Hour)); next == v {
				t.Fatal("value did not change in the next hour")
			}

			// When the client refetches (12 h before expiry) it gets credentials that
			// are fresh again, not the same ones about to expire.
			refetch := time.Unix(expiry, 0).Add(-clientMargin)
			_, _, newExpiry, _ := parseMetadata(t, s.MetadataValue(tc.host, tc.port, refetch))
			if left := time.Unix(newExpiry, 0).Sub(refetch); left < 4*24*time.Hour {
				t.Fatalf("refetched value valid only %v more", left)
			}
			if newExpiry <= expiry {
				t.Fatalf("refetched expiry %d not after %d", newExpiry, expiry)
			}
		})
	}
}
