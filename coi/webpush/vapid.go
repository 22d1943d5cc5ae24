package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/coibox/coibox/internal/secretfile"
)

// KeyFileName is the VAPID key's file in the data directory. The backup command must
// copy it with the other key files: push services pin the key a subscription was made
// with and refuse any other (§8.2).
const KeyFileName = "webpush-vapid.pem"

// Key is the instance's VAPID key pair (RFC 8292), one for all accounts (§8.2).
type Key struct {
	priv *ecdsa.PrivateKey
	// k is the public key as the Authorization header's k= parameter wants it:
	// base64url without padding of the 65-byte uncompressed point.
	k   string
	pem string
}

// LoadKey reads the key from path, or makes a new P-256 key there (PKCS #8 PEM, mode
// 0600) if the file does not exist yet. Creation is atomic and never replaces a file:
// concurrent callers and a crash mid-way leave either no file or the whole one, and
// every caller ends up with the key on disk.
func LoadKey(path string) (*Key, error) {
	k, err := readKey(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate vapid key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode vapid key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := secretfile.Create(path, data); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Another process made it first; its key is the one subscriptions will use.
		return readKey(path)
	}
	return newKey(priv)
}

func readKey(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read vapid key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read vapid key: %s holds no PRIVATE KEY block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse vapid key %s: %w", path, err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse vapid key %s: not a P-256 key", path)
	}
	// A restored backup may have lost the mode; whoever reads the key can send
	// notifications as this server.
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat vapid key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("restrict vapid key: %w", err)
		}
	}
	return newKey(priv)
}

// keyFromScalar makes a key from its raw 32-byte private scalar (the spec's test vector).
func keyFromScalar(d []byte) (*Key, error) {
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		return nil, fmt.Errorf("parse vapid key: %w", err)
	}
	return newKey(priv)
}

func newKey(priv *ecdsa.PrivateKey) (*Key, error) {
	point, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode vapid public key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode vapid public key: %w", err)
	}
	// pem.EncodeToMemory already writes 64-character lines with LF; the spec's form
	// (177 bytes, which OXCORE's regex and OX COI's "\n" stripping expect) differs only
	// by the missing final newline.
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	return &Key{
		priv: priv,
		k:    base64.RawURLEncoding.EncodeToString(point),
		pem:  string(p[:len(p)-1]),
	}, nil
}

// PublicPEM is the value of VapidEntry (§8.2): the SPKI public key in PEM, LF line
// breaks, no final newline.
func (k *Key) PublicPEM() string { return k.pem }

// K is the public key as base64url of the uncompressed point, the form clients pass
// to PushManager.subscribe as applicationServerKey and the k= of each request.
func (k *Key) K() string { return k.k }

// String keeps the private key out of logs.
func (k *Key) String() string { return "webpush.Key(" + k.k + ")" }

// jwtHeader is the base64url of {"typ":"JWT","alg":"ES256"} (§8.9), fixed.
const jwtHeader = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9"

// authorization is the Authorization header value (RFC 8292 §3): "vapid t=<JWT>, k=<key>".
// The JWT's signature is ES256 as JWS wants it, r‖s of 32 bytes each, not the ASN.1
// DER that ecdsa.SignASN1 makes and some push services reject.
func (k *Key) authorization(aud, sub string, exp time.Time) (string, error) {
	claims := make([]byte, 0, 64+len(aud)+len(sub))
	claims = append(claims, `{"aud":`...)
	claims = appendJSONString(claims, aud)
	claims = append(claims, `,"exp":`...)
	claims = strconv.AppendInt(claims, exp.Unix(), 10)
	claims = append(claims, `,"sub":`...)
	claims = appendJSONString(claims, sub)
	claims = append(claims, '}')

	b64 := base64.RawURLEncoding
	buf := make([]byte, 0, 10+len(jwtHeader)+b64.EncodedLen(len(claims))+b64.EncodedLen(64)+6+len(k.k))
	buf = append(buf, "vapid t="...)
	start := len(buf)
	buf = append(buf, jwtHeader...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, claims)
	digest := sha256.Sum256(buf[start:])
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign vapid token: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig[:])
	buf = append(buf, ", k="...)
	buf = append(buf, k.k...)
	return string(buf), nil
}
