package webadmin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SetupTokenFile is the file in the data directory holding the SHA-256 of the
// one-time token that opens the first-run page; the token itself is only printed.
const SetupTokenFile = "admin-setup-token"

// NewSetupToken makes a one-time setup token for the admin page's first run and keeps
// its hash in dataDir; a token made before is replaced. It returns the token, to be
// printed (quickstart, serve on the local profile).
func NewSetupToken(dataDir string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make setup token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	path := filepath.Join(dataDir, SetupTokenFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write setup token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write setup token: %w", err)
	}
	return token, nil
}

// errNoSetupToken says there is no token to check (never made, or used).
var errNoSetupToken = errors.New("no setup token")

// checkSetupToken reports whether token is the one NewSetupToken made.
func checkSetupToken(dataDir, token string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, SetupTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, errNoSetupToken
	}
	if err != nil {
		return false, fmt.Errorf("read setup token: %w", err)
	}
	want, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return false, fmt.Errorf("read setup token: %w", err)
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1, nil
}

// useSetupToken removes the token: it works once.
func useSetupToken(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, SetupTokenFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove setup token: %w", err)
	}
	return nil
}
