package webpush

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// countingReader yields 0, 1, 2, …: the transcript's validation string is bytes 0..31.
type countingReader struct{ n byte }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// TestTranscriptWebPush plays spec §9 "WebPush: VAPID, subscribe, validate, list,
// unsubscribe" against the functions the METADATA hook calls, with a push service
// at push.example.net that decrypts the validation push.
func TestTranscriptWebPush(t *testing.T) {
	const (
		id    = "31754ee7-d3ee-4226-b112-6895ed26fcf8"
		entry = "/private/vendor/vendor.dovecot/webpush/subscriptions/" + id
	)
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	ep.add("/p/abc123", rfcUserAgent(t))
	st := newMemStore()
	clock := &fixedClock{t: time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)}
	s := newService(t, key, pool, st, func(o *Options) {
		// The transcript's host, sent to the local endpoint; both allow-listed, as
		// webpush.allow_endpoints would be in a test setup.
		o.AllowEndpoints = []string{"push.example.net", "127.0.0.1"}
		o.Now = clock.now
		o.Rand = &countingReader{}
	})
	tr := s.client.Transport.(*http.Transport)
	dial := tr.DialContext
	local := ep.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "push.example.net:443" {
			addr = local
		}
		return dial(ctx, network, addr)
	}

	// t GETMETADATA "" /private/vendor/vendor.dovecot/webpush/vapid
	wantPEM := "-----BEGIN PUBLIC KEY-----\n" +
		"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/jP0qw3qcZFNtVgj9ztUlI9BMG2S\n" +
		"BzLbuaWaUyhkgiAOWXp7e8JguhwieZhYCZLpOXMALzASooro8Gu7eOXsDw==\n" +
		"-----END PUBLIC KEY-----"
	if kind, _ := ParseEntry("/private/vendor/vendor.dovecot/webpush/vapid"); kind != EntryVapid {
		t.Fatalf("t: vapid entry parsed as %v", kind)
	}
	if got := key.PublicPEM(); got != wantPEM || len(got) != 177 {
		t.Fatalf("t: vapid value (%d bytes)\n%s\nwant (177 bytes)\n%s", len(got), got, wantPEM)
	}
	oxcore := regexp.MustCompile(`-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/\r\n]+={0,3}\r?\n-----END PUBLIC KEY-----`)
	if !oxcore.MatchString(key.PublicPEM()) {
		t.Fatal("t: OXCORE's regex does not match the vapid value")
	}
	if key.K() != "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8" {
		t.Fatalf("t: k = %s", key.K())
	}
	// A SET of the vapid entry (§8.1).
	if got, want := noText(ReadOnly(VapidEntry)), "NO [CANNOT] unable to set /private/vendor/vendor.dovecot/webpush/vapid"; got != want {
		t.Fatalf("vapid SET: %s, want %s", got, want)
	}

	// u SETMETADATA "" (…/subscriptions/<id> {263+} …)
	value := []byte(`{"client":"OX COI Messenger","device":"phone","msgtype":"chat","resource":{"endpoint":"https://push.example.net/p/abc123","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}}`)
	if len(value) != 263 {
		t.Fatalf("u: value is %d bytes, the transcript's literal 263", len(value))
	}
	kind, gotID := ParseEntry(entry)
	if kind != EntrySubscription || gotID != id {
		t.Fatalf("u: entry parsed as %v %q", kind, gotID)
	}
	cur, _ := st.load(t.Context(), 1)
	stored, err := s.Subscribe(t.Context(), 1, id, value, cur)
	if err != nil {
		t.Fatalf("u: %s, want OK", noText(err))
	}
	st.put(1, id, stored)
	push := ep.next(t)
	if push.path != "/p/abc123" {
		t.Fatalf("u: validation push went to %s", push.path)
	}
	if v, ok := push.header["Webpush-Validation"]; !ok || len(v) != 1 || v[0] != "" {
		t.Fatalf("u: WebPush-Validation header = %q (present %v), want present and empty", v, ok)
	}
	if got, want := string(push.plain), `{"validation":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`; got != want {
		t.Fatalf("u: validation push decrypts to %s, want %s", got, want)
	}
	if push.claims.Aud != "https://push.example.net" {
		t.Fatalf("u: aud = %q", push.claims.Aud)
	}
	if bytes.Contains(stored, []byte(`"validated":true`)) {
		t.Fatal("u: stored as validated before validation")
	}

	// v SETMETADATA "" (…/<id>/validate "AAEC…")
	kind, gotID = ParseEntry(entry + "/validate")
	if kind != EntryValidate || gotID != id {
		t.Fatalf("v: entry parsed as %v %q", kind, gotID)
	}
	clock.add(time.Minute)
	stored, err = s.Validate(1, id, st.get(1, id), []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="))
	if err != nil {
		t.Fatalf("v: %s, want OK", noText(err))
	}
	st.put(1, id, stored)

	// w GETMETADATA (DEPTH 1) "" (…/subscriptions)
	all, _ := st.load(t.Context(), 1)
	if len(all) != 1 {
		t.Fatalf("w: %d subscriptions", len(all))
	}
	pub, ok := s.Public(all[id])
	if !ok {
		t.Fatal("w: subscription not shown")
	}
	wantPub := `{"created":"2026-09-01T10:00:00+00:00","validated":true,"client":"OX COI Messenger","device":"phone","msgtype":"chat","resource":{"endpoint":"https://push.example.net/p/abc123","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}}`
	if string(pub) != wantPub || len(pub) != 318 {
		t.Fatalf("w: public form (%d bytes)\n%s\nwant (318 bytes)\n%s", len(pub), pub, wantPub)
	}
	if strings.Contains(string(stored), "AAECAw") {
		t.Fatal("w: the validation string outlived the validation")
	}

	// x SETMETADATA "" (…/<id>/validate "ZZZ000")
	if _, err := s.Validate(1, id, st.get(1, id), []byte("ZZZ000")); noText(err) != "NO [CANNOT] invalid validation" {
		t.Fatalf("x: %s", noText(err))
	}

	// y SETMETADATA "" (…/<id> NIL): OK, even if absent.
	s.Unsubscribe(1, id)
	st.put(1, id, nil)
	s.Unsubscribe(1, "never-there")
	ep.none(t, 50*time.Millisecond)
}
