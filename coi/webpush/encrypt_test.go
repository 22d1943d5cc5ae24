package webpush

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// TestEncryptRFC8291 is the RFC 8291 Appendix A vector as spec §8.8 gives it.
func TestEncryptRFC8291(t *testing.T) {
	ua := rfcUserAgent(t)
	as, err := ecdh.P256().NewPrivateKey(b64url(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	uaPub, err := ecdh.P256().NewPublicKey(b64url(t, rfcUAPublic))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(uaPub.Bytes(), ua.priv.PublicKey().Bytes()) {
		t.Fatal("the vector's ua_public is not its ua_private's")
	}
	plain := []byte("When I grow up, I want to be a watermelon")
	body, err := encrypt(plain, uaPub, ua.auth, b64url(t, rfcSalt), as, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
	if got := base64.RawURLEncoding.EncodeToString(body); got != want {
		t.Fatalf("body\n%s\nwant\n%s", got, want)
	}
	// The intermediate values, from the test's own HMAC derivation.
	secret, _ := as.ECDH(uaPub)
	ikm := hmacSHA256(hmacSHA256(ua.auth, secret), []byte("WebPush: info\x00"), uaPub.Bytes(), as.PublicKey().Bytes(), []byte{1})
	prk := hmacSHA256(b64url(t, rfcSalt), ikm)
	for name, tc := range map[string]struct {
		got  []byte
		want string
	}{
		"ecdh":  {secret, "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"},
		"IKM":   {ikm, "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"},
		"PRK":   {prk, "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc"},
		"CEK":   {hmacSHA256(prk, []byte("Content-Encoding: aes128gcm\x00\x01"))[:16], "oIhVW04MRdy2XN9CiKLxTg"},
		"NONCE": {hmacSHA256(prk, []byte("Content-Encoding: nonce\x00\x01"))[:12], "4h_95klXJ5E_qnoN"},
	} {
		if got := base64.RawURLEncoding.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s = %s, want %s", name, got, tc.want)
		}
	}
	back, err := decryptPush(ua.priv, ua.auth, body)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("decrypt: %q %v", back, err)
	}
}

// TestEncryptPadding: no padding by default; with padding the body is a multiple of
// 1 KiB and never over 4096 (§8.8).
func TestEncryptPadding(t *testing.T) {
	ua := newUserAgent(t)
	for _, n := range []int{0, 1, 100, 1024 - 86 - 17, 1024 - 86 - 16, 2000, MaxPlaintext} {
		plain := bytes.Repeat([]byte("a"), n)
		for _, pad := range []bool{false, true} {
			as, _ := ecdh.P256().GenerateKey(nil)
			body, err := encrypt(plain, ua.priv.PublicKey(), ua.auth, make([]byte, 16), as, pad)
			if err != nil {
				t.Fatalf("%d bytes, pad %v: %v", n, pad, err)
			}
			unpadded := 86 + n + 1 + 16
			switch {
			case !pad && len(body) != unpadded:
				t.Errorf("%d bytes unpadded: body %d, want %d", n, len(body), unpadded)
			case pad && (len(body)%1024 != 0 || len(body) > 4096 || len(body) < unpadded || len(body)-unpadded >= 1024):
				t.Errorf("%d bytes padded: body %d", n, len(body))
			}
			back, err := decryptPush(ua.priv, ua.auth, body)
			if err != nil || !bytes.Equal(back, plain) {
				t.Fatalf("%d bytes, pad %v: decrypt %v", n, pad, err)
			}
		}
	}
	as, _ := ecdh.P256().GenerateKey(nil)
	if _, err := encrypt(make([]byte, MaxPlaintext+1), ua.priv.PublicKey(), ua.auth, make([]byte, 16), as, false); err == nil {
		t.Fatal("3994 bytes of plaintext accepted")
	}
}

// TestVAPIDToken checks the JWT as a push service would (§8.9, D3).
func TestVAPIDToken(t *testing.T) {
	key := testKey(t)
	exp := time.Unix(1788264000, 0)
	auth, err := key.authorization("https://push.example.net:8443", "mailto:postmaster@example.org", exp)
	if err != nil {
		t.Fatal(err)
	}
	c, err := checkVAPID(auth, key)
	if err != nil {
		t.Fatal(err)
	}
	if c != (vapidClaims{Aud: "https://push.example.net:8443", Exp: 1788264000, Sub: "mailto:postmaster@example.org"}) {
		t.Fatalf("claims %+v", c)
	}
	claims := strings.Split(strings.TrimPrefix(strings.Split(auth, ", k=")[0], "vapid t="), ".")[1]
	if got, _ := base64.RawURLEncoding.DecodeString(claims); string(got) != `{"aud":"https://push.example.net:8443","exp":1788264000,"sub":"mailto:postmaster@example.org"}` {
		t.Fatalf("claims JSON %s", got)
	}
	other, err := LoadKey(t.TempDir() + "/k.pem")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkVAPID(strings.Replace(auth, key.K(), other.K(), 1), other); err == nil {
		t.Fatal("the token verifies with another key")
	}
}

func TestOrigin(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://push.example.net/p":       "https://push.example.net",
		"https://Push.Example.NET/p":       "https://push.example.net",
		"https://push.example.net:443/p":   "https://push.example.net",
		"https://push.example.net:0443/p":  "https://push.example.net",
		"https://push.example.net:8443/p":  "https://push.example.net:8443",
		"https://[2001:db8::1]:8443/p?q=1": "https://[2001:db8::1]:8443",
		"https://192.0.2.1/p":              "https://192.0.2.1",
	} {
		sub, err := ParseSubscription(subValue("c", "d", "chat", endpoint, p256URL, authURL, ""))
		if err != nil {
			t.Fatalf("%s: %v", endpoint, err)
		}
		if got := origin(sub); got != want {
			t.Errorf("origin(%s) = %s, want %s", endpoint, got, want)
		}
	}
}
