package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2id cost: OWASP's minimum (19 MiB, 2 passes) keeps a login well under 100 ms on
// a Raspberry Pi while still making an offline guess expensive.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

var errBadHash = errors.New("unrecognised password hash")

// checkPassword reports whether password matches a hash made by HashPassword.
func checkPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// authCache remembers successful verifications, so a client that logs in on every
// connection (Delta Chat does, several times a minute) costs one argon2 run, not many.
// It keys on a digest of hash and password: a password change makes old entries miss.
//
// It also bounds how many argon2 runs go at once (sem): each takes 19 MiB for tens
// of milliseconds, so fifty first logins at once would otherwise want a gigabyte on
// a machine that may have one. Beyond the bound they queue, which costs time, not
// memory; cache hits never wait.
type authCache struct {
	mu  sync.Mutex
	ok  map[[32]byte]struct{}
	sem chan struct{}
}

// run does one argon2 computation within the bound.
func (c *authCache) run(f func()) {
	if c.sem != nil {
		c.sem <- struct{}{}
		defer func() { <-c.sem }()
	}
	f()
}

// hash is HashPassword within the bound.
func (c *authCache) hash(password string) (h string, err error) {
	c.run(func() { h, err = HashPassword(password) })
	return h, err
}

// spend is spendHashCost within the bound.
func (c *authCache) spend(password string) { c.run(func() { spendHashCost(password) }) }

func authKey(hash, password string) [32]byte {
	return sha256.Sum256([]byte(hash + "\x00" + password))
}

func (c *authCache) check(hash, password string) (bool, error) {
	k := authKey(hash, password)
	c.mu.Lock()
	_, hit := c.ok[k]
	c.mu.Unlock()
	if hit {
		return true, nil
	}
	var ok bool
	var err error
	c.run(func() { ok, err = checkPassword(hash, password) })
	if ok {
		c.remember(hash, password)
	}
	return ok, err
}

// remember records a password known to match hash (one just set).
func (c *authCache) remember(hash, password string) {
	c.mu.Lock()
	if c.ok == nil || len(c.ok) > 100000 {
		c.ok = map[[32]byte]struct{}{}
	}
	c.ok[authKey(hash, password)] = struct{}{}
	c.mu.Unlock()
}

// spendHashCost does an argon2 run whose result is thrown away, so a login for an
// unknown account takes as long as one with a wrong password.
func spendHashCost(password string) {
	_ = argon2.IDKey([]byte(password), []byte("coibox-no-such-account"), argonTime, argonMemory, argonThreads, argonKeyLen)
}
