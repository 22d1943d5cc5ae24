package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// The sender is this package's own rather than github.com/SherClockHolmes/webpush-go,
// which cannot meet §8.8–§8.9: it always pads the record to its full size (4096 bytes
// by default; a smaller RecordSize changes the rs field, which must be 4096), where the
// spec wants no padding by default and optional padding to 1 KiB; its salt and
// ephemeral key cannot be fixed, so the RFC 8291 test vector cannot be checked; and it
// has no way to send WebPush-Validation. What it does (HKDF, AES-GCM, an ES256 JWT) is
// a few lines on the standard library and golang.org/x/crypto/hkdf.

const (
	// recordSize is the rs field: one record of at most 4096 bytes (§8.8, RFC 8291 §4).
	recordSize = 4096
	saltSize   = 16
	// headerSize is salt, rs, idlen and the 65-byte key id (RFC 8188 §2.1).
	headerSize = saltSize + 4 + 1 + 65
	tagSize    = 16
	// MaxPlaintext keeps the whole body within 4096 bytes: header, plaintext, the 0x02
	// delimiter and the GCM tag (§8.8).
	MaxPlaintext = recordSize - headerSize - 1 - tagSize
	padBoundary  = 1024
)

var errTooLong = errors.New("plaintext over 3993 bytes")

// encrypt makes the aes128gcm body of one push message (RFC 8291 §3.4, RFC 8188 §2):
// a single record, zero-padded to the next 1 KiB of the body when pad is set. salt and
// as (the application server's one-time key pair) are fresh per message; they are
// parameters only so that the test vector can fix them.
func encrypt(plaintext []byte, ua *ecdh.PublicKey, auth, salt []byte, as *ecdh.PrivateKey, pad bool) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, errTooLong
	}
	secret, err := as.ECDH(ua)
	if err != nil {
		return nil, fmt.Errorf("compute ecdh secret: %w", err)
	}
	uaRaw, asRaw := ua.Bytes(), as.PublicKey().Bytes()

	// IKM = HKDF(salt=auth, ikm=ecdh, info="WebPush: info" 0 ua_public as_public, 32)
	info := make([]byte, 0, 14+len(uaRaw)+len(asRaw))
	info = append(info, "WebPush: info\x00"...)
	info = append(info, uaRaw...)
	info = append(info, asRaw...)
	ikm, err := expand(hkdf.Extract(sha256.New, secret, auth), info, 32)
	if err != nil {
		return nil, err
	}
	prk := hkdf.Extract(sha256.New, ikm, salt)
	cek, err := expand(prk, []byte("Content-Encoding: aes128gcm\x00"), 16)
	if err != nil {
		return nil, err
	}
	nonce, err := expand(prk, []byte("Content-Encoding: nonce\x00"), 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("make content cipher: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("make content cipher: %w", err)
	}

	size := headerSize + len(plaintext) + 1 + tagSize
	padding := 0
	if pad {
		// Round the body up, not the record: what an observer sees is the body's size.
		// The largest unpadded body is exactly 4096, so the result stays within it.
		padding = (size+padBoundary-1)/padBoundary*padBoundary - size
	}
	out := make([]byte, headerSize, size+padding)
	copy(out, salt)
	binary.BigEndian.PutUint32(out[saltSize:], recordSize)
	out[saltSize+4] = byte(len(asRaw))
	copy(out[saltSize+5:], asRaw)
	out = append(out, plaintext...)
	out = append(out, 0x02) // last record's delimiter (RFC 8188 §2)
	out = append(out, make([]byte, padding)...)
	// Seal in place: the record's plaintext is exactly where its ciphertext goes.
	return gcm.Seal(out[:headerSize], nonce, out[headerSize:], nil), nil
}

func expand(prk, info []byte, n int) ([]byte, error) {
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, prk, info), out); err != nil {
		return nil, fmt.Errorf("expand key: %w", err)
	}
	return out, nil
}
