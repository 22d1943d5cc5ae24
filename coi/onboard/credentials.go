package onboard

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
)

const (
	// LocalpartAlphabet and LocalpartLength describe the names /new hands out (§4).
	LocalpartAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	LocalpartLength   = 9
	// PasswordAlphabet is letters, digits and the 32 ASCII punctuation characters.
	PasswordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" +
		"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	// PasswordExtra is how many characters a /new password has beyond password_min.
	PasswordExtra = 3

	// defaultPasswordMin stands in for an unset password_min, so that an unset
	// profile never yields a three-character password.
	defaultPasswordMin = 9
	// maxPasswordMin refuses absurd settings rather than building huge passwords.
	maxPasswordMin = 1024
	// nameTries bounds the search for a free name. 36^9 names make even one
	// collision unlikely, so running out means the exists check is broken.
	nameTries = 16
)

// Credentials are a fresh address and password. Nothing is stored: the account is
// made when they are first used to log in (§3).
type Credentials struct {
	Email    string
	Password string
}

// DCLoginURL is the dclogin: form of c for servers with a self-signed certificate,
// which Delta Chat refuses for DCACCOUNT (§4). ic=3 tells the client to accept the
// certificate; v=1 is the scheme version.
func (c Credentials) DCLoginURL() string {
	return "dclogin:" + c.Email + "?p=" + url.QueryEscape(c.Password) + "&v=1&ic=3"
}

// NewCredentials makes credentials on domain (§4): a local part of LocalpartLength
// characters from LocalpartAlphabet that exists reports as free, and a password of
// passwordMin+PasswordExtra characters from PasswordAlphabet, all from crypto/rand.
// passwordMin below 1 means the chatmail default, 9.
func NewCredentials(ctx context.Context, domain string, passwordMin int, exists func(ctx context.Context, address string) (bool, error)) (Credentials, error) {
	if passwordMin < 1 {
		passwordMin = defaultPasswordMin
	}
	if passwordMin > maxPasswordMin {
		return Credentials{}, fmt.Errorf("make credentials: password_min %d is over %d", passwordMin, maxPasswordMin)
	}
	var email string
	for try := 0; ; try++ {
		if try == nameTries {
			return Credentials{}, fmt.Errorf("pick local part: %d random names on %s all exist", nameTries, domain)
		}
		local, err := randomString(LocalpartAlphabet, LocalpartLength)
		if err != nil {
			return Credentials{}, fmt.Errorf("pick local part: %w", err)
		}
		candidate := local + "@" + domain
		taken, err := exists(ctx, candidate)
		if err != nil {
			return Credentials{}, fmt.Errorf("look up new address: %w", err)
		}
		if !taken {
			email = candidate
			break
		}
	}
	password, err := randomString(PasswordAlphabet, passwordMin+PasswordExtra)
	if err != nil {
		return Credentials{}, fmt.Errorf("make password: %w", err)
	}
	return Credentials{Email: email, Password: password}, nil
}

// randomString returns n characters drawn uniformly from alphabet (at most 256 long).
// Bytes at or above the largest multiple of len(alphabet) are thrown away, since
// taking them modulo the length would favour the first characters.
func randomString(alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
