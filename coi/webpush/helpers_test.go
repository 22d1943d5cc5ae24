package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coibox/coibox/coi/webpush/webpushtest"
)

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// decryptPush is a user agent reading an aes128gcm push message (§8.8).
func decryptPush(ua *ecdh.PrivateKey, auth, body []byte) ([]byte, error) {
	return webpushtest.UserAgent{Priv: ua, Auth: auth}.Decrypt(body)
}

type vapidClaims struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Sub string `json:"sub"`
}

// checkVAPID verifies an Authorization header as a push service does (RFC 8292): the
// k= is the server's key, the JWT header is ES256, the signature r‖s verifies with k.
func checkVAPID(auth string, key *Key) (vapidClaims, error) {
	var c vapidClaims
	rest, ok := strings.CutPrefix(auth, "vapid t=")
	if !ok {
		return c, fmt.Errorf("authorization %q: not vapid", auth)
	}
	jwt, k, ok := strings.Cut(rest, ", k=")
	if !ok {
		return c, errors.New("no k=")
	}
	if k != key.K() {
		return c, fmt.Errorf("k = %s, want %s", k, key.K())
	}
	point, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return c, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return c, err
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("jwt has %d parts", len(parts))
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, err
	}
	if string(hdr) != `{"typ":"JWT","alg":"ES256"}` {
		return c, fmt.Errorf("jwt header %s", hdr)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return c, fmt.Errorf("signature of %d bytes (%v), want raw r‖s of 64", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return c, errors.New("signature does not verify")
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(strings.NewReader(string(claims)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("claims %s: %w", claims, err)
	}
	return c, nil
}

// The RFC 8291 Appendix A keys, which the spec's vectors and transcripts use.
const (
	rfcASPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcUAPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcSalt      = "DGv6ra1nlYgDCS1FRnbzlw"
)

func b64url(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return b
}

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := keyFromScalar(b64url(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// userAgent is one browser-side subscription: its key pair and auth secret.
type userAgent struct {
	priv *ecdh.PrivateKey
	auth []byte
}

func newUserAgent(t testing.TB) userAgent {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return userAgent{priv: priv, auth: auth}
}

func rfcUserAgent(t testing.TB) userAgent {
	t.Helper()
	priv, err := ecdh.P256().NewPrivateKey(b64url(t, rfcUAPrivate))
	if err != nil {
		t.Fatal(err)
	}
	return userAgent{priv: priv, auth: b64url(t, rfcAuth)}
}

// subJSON is a client's subscription value for endpoint.
func (u userAgent) subJSON(endpoint, msgtype string, extra string) []byte {
	return webpushtest.UserAgent{Priv: u.priv, Auth: u.auth}.SubscriptionJSON(endpoint, msgtype, extra)
}

// received is one request the test endpoint got, decrypted and checked.
type received struct {
	path    string
	header  http.Header
	bodyLen int
	plain   []byte
	claims  vapidClaims
	err     error // decryption or VAPID failure
	at      time.Time
}

// endpoint is a local push service: TLS on 127.0.0.1, one user agent per path, every
// request decrypted with that path's private key and its VAPID token verified.
type endpoint struct {
	t   *testing.T
	srv *httptest.Server
	key *Key
	got chan received

	mu     sync.Mutex
	agents map[string]userAgent
	// answer, if set, picks the response to the n-th request (from 1) of a path.
	answer func(path string, n int) (int, http.Header)
	counts map[string]int
}

// testCert is a self-signed certificate for the names the tests dial.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "webpush test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"push.example.net", "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool
}

func newEndpoint(t *testing.T, key *Key) (*endpoint, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	ep := &endpoint{t: t, key: key, got: make(chan received, 256), agents: map[string]userAgent{}, counts: map[string]int{}}
	ep.srv = httptest.NewUnstartedServer(http.HandlerFunc(ep.serve))
	ep.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ep.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the TLS test's refused handshakes
	ep.srv.StartTLS()
	t.Cleanup(ep.srv.Close)
	return ep, pool
}

// add registers a user agent at path and returns the endpoint URL.
func (ep *endpoint) add(path string, ua userAgent) string {
	ep.mu.Lock()
	ep.agents[path] = ua
	ep.mu.Unlock()
	return ep.srv.URL + path
}

func (ep *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	ep.mu.Lock()
	ua, ok := ep.agents[r.URL.Path]
	ep.counts[r.URL.Path]++
	n := ep.counts[r.URL.Path]
	answer := ep.answer
	ep.mu.Unlock()
	rec := received{path: r.URL.Path, header: r.Header.Clone(), bodyLen: len(body), at: at}
	switch {
	case r.Method != http.MethodPost:
		rec.err = fmt.Errorf("method %s", r.Method)
	case !ok:
		rec.err = fmt.Errorf("no user agent at %s", r.URL.Path)
	default:
		rec.plain, rec.err = decryptPush(ua.priv, ua.auth, body)
		if rec.err == nil {
			rec.claims, rec.err = checkVAPID(r.Header.Get("Authorization"), ep.key)
		}
	}
	ep.got <- rec
	status, hdr := http.StatusCreated, http.Header(nil)
	if answer != nil {
		status, hdr = answer(r.URL.Path, n)
	}
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

// next waits for the next request.
func (ep *endpoint) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-ep.got:
		if r.err != nil {
			t.Fatalf("endpoint %s: %v", r.path, r.err)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the endpoint")
	}
	return received{}
}

// none checks no request arrives within d.
func (ep *endpoint) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-ep.got:
		t.Fatalf("unexpected request to %s: %s", r.path, r.plain)
	case <-time.After(d):
	}
}

// memStore keeps subscription values as the METADATA store would, with the
// compare-and-delete Options.Remove asks for.
type memStore struct {
	mu      sync.Mutex
	subs    map[int64]map[string][]byte
	removed chan string
}

func newMemStore() *memStore {
	return &memStore{subs: map[int64]map[string][]byte{}, removed: make(chan string, 64)}
}

func (m *memStore) put(account int64, id string, v []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs[account] == nil {
		m.subs[account] = map[string][]byte{}
	}
	m.subs[account][id] = v
}

func (m *memStore) get(account int64, id string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subs[account][id]
}

func (m *memStore) load(_ context.Context, account int64) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for id, v := range m.subs[account] {
		out[id] = v
	}
	return out, nil
}

func (m *memStore) remove(_ context.Context, account int64, id string, stored []byte) error {
	m.mu.Lock()
	cur, ok := m.subs[account][id]
	if ok && string(cur) == string(stored) {
		delete(m.subs[account], id)
	}
	m.mu.Unlock()
	m.removed <- id
	return nil
}

// fixedClock is a clock the test moves.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newService makes a service that trusts the endpoint's certificate and allows
// 127.0.0.1, with fast retries.
func newService(t *testing.T, key *Key, pool *x509.CertPool, st *memStore, mod func(*Options)) *Service {
	t.Helper()
	o := Options{
		PrimaryDomain:  "example.org",
		AllowEndpoints: []string{"127.0.0.1"},
		TLSConfig:      &tls.Config{RootCAs: pool},
		Load:           st.load,
		Remove:         st.remove,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(key, o)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}
	return s
}

func run(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// validated stores a validated subscription for ua at endpoint, as Subscribe and
// Validate would, without the validation round trip.
func validated(t testing.TB, ua userAgent, endpoint, msgtype, extra string, created time.Time) []byte {
	t.Helper()
	sub, err := ParseSubscription(ua.subJSON(endpoint, msgtype, extra))
	if err != nil {
		t.Fatal(err)
	}
	sub.Created, sub.Validated = created, true
	return sub.encodeStored()
}

// noText is how the hook would answer err: "NO [code] text".
func noText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return "NO [" + e.Code + "] " + e.Text
	}
	if err == nil {
		return "OK"
	}
	return "ERR " + err.Error()
}
