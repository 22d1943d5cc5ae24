// Package webpushtest is the receiving side of Web Push for tests: a user agent with
// its key pair that decrypts what a push service would hand it (RFC 8291, RFC 8188).
//
// It is written from the RFCs' pseudo-code with crypto/hmac rather than with the
// sender's HKDF calls, so that a shared mistake would have to be made twice.
package webpushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// UserAgent is a browser's (or app's) side of one subscription.
type UserAgent struct {
	Priv *ecdh.PrivateKey
	Auth []byte
}

// NewUserAgent makes a user agent with a fresh key pair and auth secret.
func NewUserAgent() (UserAgent, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return UserAgent{}, fmt.Errorf("make user agent key: %w", err)
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		return UserAgent{}, fmt.Errorf("make auth secret: %w", err)
	}
	return UserAgent{Priv: priv, Auth: auth}, nil
}

// SubscriptionJSON is a client's subscription value for endpoint (coi spec §8.3),
// with extra appended inside the object (e.g. `,"exclude_from":[]`).
func (u UserAgent) SubscriptionJSON(endpoint, msgtype, extra string) []byte {
	return fmt.Appendf(nil, `{"client":"test","device":"d","msgtype":%q,"resource":{"endpoint":%q,"keys":{"p256dh":%q,"auth":%q}}%s}`,
		msgtype, endpoint,
		base64.RawURLEncoding.EncodeToString(u.Priv.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(u.Auth), extra)
}

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Decrypt reads an aes128gcm push message body (one record, rs 4096).
func (u UserAgent) Decrypt(body []byte) ([]byte, error) {
	if len(body) < 86+17 {
		return nil, fmt.Errorf("body of %d bytes is too short", len(body))
	}
	salt := body[:16]
	if rs := binary.BigEndian.Uint32(body[16:20]); rs != 4096 {
		return nil, fmt.Errorf("rs = %d, want 4096", rs)
	}
	if body[20] != 65 {
		return nil, fmt.Errorf("idlen = %d, want 65", body[20])
	}
	asRaw := body[21:86]
	as, err := ecdh.P256().NewPublicKey(asRaw)
	if err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	secret, err := u.Priv.ECDH(as)
	if err != nil {
		return nil, err
	}
	prkKey := hmacSHA256(u.Auth, secret)
	ikm := hmacSHA256(prkKey, []byte("WebPush: info\x00"), u.Priv.PublicKey().Bytes(), asRaw, []byte{1})
	prk := hmacSHA256(salt, ikm)
	cek := hmacSHA256(prk, []byte("Content-Encoding: aes128gcm\x00\x01"))[:16]
	nonce := hmacSHA256(prk, []byte("Content-Encoding: nonce\x00\x01"))[:12]
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	rec, err := gcm.Open(nil, nonce, body[86:], nil)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	// Strip the zero padding, then the delimiter: 0x02 marks the last (only) record.
	i := len(rec) - 1
	for i >= 0 && rec[i] == 0 {
		i--
	}
	if i < 0 || rec[i] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return rec[:i], nil
}
