package turn

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST convention and every client use.
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/internal/secretfile"
)

const (
	// SecretFileName is the name the secret file gets in the data directory, so that it
	// is kept with the rest of the server's state (and its backups).
	SecretFileName = "turn.secret"

	// CredentialLifetime is how long issued credentials stay valid; chatmail relays
	// (chatmail-turn) use the same five days.
	CredentialLifetime = 5 * 24 * time.Hour

	// CredentialStep is the rounding of the expiry: every client asking within the same
	// step gets the same value, so METADATA answers do not change on every request.
	CredentialStep = time.Hour

	secretSize = 32
)

// Secret is the server key that turns an expiry time into a TURN password. Because the
// password is derived, the server needs no per-user state to check credentials.
type Secret struct {
	key []byte
}

// NewSecret wraps an existing shared secret, such as the static-auth-secret of an
// external TURN server whose credentials coibox publishes.
func NewSecret(key []byte) (*Secret, error) {
	if len(key) == 0 {
		return nil, errors.New("make turn secret: empty key")
	}
	return &Secret{key: bytes.Clone(key)}, nil
}

// LoadSecret reads the secret from path, or creates it there (32 random bytes, mode
// 0600) if the file does not exist yet. Creation is atomic: concurrent callers and a
// crash mid-way never leave a partial file, and all callers end up with the same key.
func LoadSecret(path string) (*Secret, error) {
	key, err := readSecret(path)
	if err == nil {
		return &Secret{key: key}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, secretSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate turn secret: %w", err)
	}
	if err := secretfile.Create(path, key); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Someone else created it first; theirs is the one clients already got.
		key, err = readSecret(path)
		if err != nil {
			return nil, err
		}
	}
	return &Secret{key: key}, nil
}

func readSecret(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read turn secret: %w", err)
	}
	if len(key) != secretSize {
		return nil, fmt.Errorf("read turn secret: %s has %d bytes, want %d", path, len(key), secretSize)
	}
	// A restored backup may have lost the mode; anyone who can read the key can mint
	// credentials for the relay.
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat turn secret: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("restrict turn secret: %w", err)
		}
	}
	return key, nil
}

// String keeps the key out of logs and error messages.
func (s *Secret) String() string { return "turn.Secret(redacted)" }

// Credentials returns the TURN username and password valid at now: the username is
// the expiry as decimal unix seconds, the password base64(HMAC-SHA1(secret, username))
// (the TURN REST API convention, as Delta Chat and pion's long-term credential helpers
// expect). The expiry is rounded down to CredentialStep, so it lies between
// CredentialLifetime-CredentialStep and CredentialLifetime after now.
func (s *Secret) Credentials(now time.Time) (username, password string, expiry time.Time) {
	step := int64(CredentialStep / time.Second)
	at := now.Unix()
	at -= ((at % step) + step) % step // floor, also for times before 1970
	expiry = time.Unix(at+int64(CredentialLifetime/time.Second), 0)
	username = strconv.FormatInt(expiry.Unix(), 10)
	return username, s.password(username), expiry
}

func (s *Secret) password(username string) string {
	mac := hmac.New(sha1.New, s.key)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// MetadataValue is the value of the /shared/vendor/deltachat/turn METADATA key:
// "host:port:expiry:password", where the expiry doubles as the username. Delta Chat
// refetches it 12 h before the expiry; the value always has more than four days left,
// so a refetch always yields fresh credentials. host must be a DNS name or IPv4
// literal: the client splits at the first colon, so a host with a colon (an IPv6
// literal) or an invalid port yields "", which means "do not serve the key".
func (s *Secret) MetadataValue(host string, port int, now time.Time) string {
	if host == "" || strings.ContainsAny(host, ": \r\n") || port <= 0 || port > 65535 {
		return ""
	}
	username, password, _ := s.Credentials(now)
	return host + ":" + strconv.Itoa(port) + ":" + username + ":" + password
}

// check reports whether username is an unexpired username issued with this secret's
// scheme and returns the password it must come with.
func (s *Secret) check(username string, now time.Time) (password string, err error) {
	// Only plain digits: "+1700000000" would parse but is not a username we issue.
	if username == "" || strings.Trim(username, "0123456789") != "" {
		return "", fmt.Errorf("check turn username %q: not a unix time", username)
	}
	expiry, err := strconv.ParseInt(username, 10, 64)
	if err != nil {
		return "", fmt.Errorf("check turn username %q: %w", username, err)
	}
	if expiry < now.Unix() {
		return "", fmt.Errorf("check turn username %q: expired %s", username, time.Unix(expiry, 0).UTC().Format(time.RFC3339))
	}
	return s.password(username), nil
}
