package webpush

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Keys of the spec's example subscription, in both alphabets (D11).
const (
	p256URL = rfcUAPublic
	p256Std = "BCVxsr7N/eNgVRqvHtD0zTZsEc6+VV+JvLexhqUzORcxaOzi6+AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4="
	authURL = rfcAuth
	authStd = "BTBZMqHH6r4Tts7J/aSIgg=="
	// offCurve is the example point with its last byte changed: 65 bytes, 0x04, not
	// on P-256.
	offCurve = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw8"
	// compressed is the example point in SEC 1 compressed form (33 bytes).
	compressed = "AyVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcx"
)

// subValue builds a subscription value from its parts; "" leaves a field out, and a
// part starting with '!' is put in raw (not as a string).
func subValue(client, device, msgtype, endpoint, p256dh, auth, tail string) []byte {
	field := func(name, v string) string {
		if v == "" {
			return ""
		}
		if raw, ok := strings.CutPrefix(v, "!"); ok {
			return fmt.Sprintf("%q:%s,", name, raw)
		}
		b, _ := json.Marshal(v)
		return fmt.Sprintf("%q:%s,", name, b)
	}
	keys := strings.TrimSuffix(field("p256dh", p256dh)+field("auth", auth), ",")
	res := strings.TrimSuffix(field("endpoint", endpoint)+`"keys":{`+keys+`}`, ",")
	s := "{" + field("client", client) + field("device", device) + field("msgtype", msgtype) + `"resource":{` + res + "}" + tail + "}"
	return []byte(s)
}

func okValue(tail string) []byte {
	return subValue("c", "d", "chat", "https://push.example.net/p/abc123", p256URL, authURL, tail)
}

// TestParseSubscription is §8.3's field table, row by row.
func TestParseSubscription(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	ep := "https://push.example.net/p/abc123"
	padTo := func(n int) []byte {
		v := okValue(`,"pad":""`)
		return okValue(`,"pad":"` + long(n-len(v)) + `"`)
	}
	tests := []struct {
		name  string
		value []byte
		want  string
	}{
		{"the transcript's value", okValue(""), "OK"},
		{"4096 bytes", padTo(4096), "OK"},
		{"4097 bytes", padTo(4097), "NO [METADATA MAXSIZE 4096] Subscription too large"},
		{"not JSON", []byte(`{"client":`), "NO [CANNOT] Invalid JSON: unexpected end of JSON input at offset 10"},
		{"garbage after the object", []byte(`{} x`), "NO [CANNOT] Invalid JSON: invalid character 'x' after top-level value at offset 4"},
		{"an array", []byte(`[1]`), "NO [CANNOT] Invalid JSON: not an object"},
		{"a string", []byte(`"x"`), "NO [CANNOT] Invalid JSON: not an object"},
		{"null", []byte(`null`), "NO [CANNOT] Invalid JSON: not an object"},
		{"empty object", []byte(`{}`), "NO [CANNOT] Invalid subscription: client"},
		{"empty value", []byte(``), "NO [CANNOT] Invalid JSON: unexpected end of JSON input at offset 0"},
		{"white space around", append(append([]byte(" \r\n\t"), okValue("")...), '\n'), "OK"},

		{"client missing", subValue("", "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},
		{"client empty", subValue("!\"\"", "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},
		{"client a number", subValue("!5", "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},
		{"client null", subValue("!null", "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},
		{"client 128 bytes", subValue(long(128), "d", "chat", ep, p256URL, authURL, ""), "OK"},
		{"client 129 bytes", subValue(long(129), "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},
		{"client 64 two-byte characters", subValue(strings.Repeat("ä", 64), "d", "chat", ep, p256URL, authURL, ""), "OK"},
		{"client 65 two-byte characters", subValue(strings.Repeat("ä", 65), "d", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: client"},

		{"device missing", subValue("c", "", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: device"},
		{"device 129 bytes", subValue("c", long(129), "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: device"},
		{"device an object", subValue("c", "!{}", "chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: device"},

		{"msgtype chat", subValue("c", "d", "chat", ep, p256URL, authURL, ""), "OK"},
		{"msgtype mail", subValue("c", "d", "mail", ep, p256URL, authURL, ""), "OK"},
		{"msgtype email", subValue("c", "d", "email", ep, p256URL, authURL, ""), "OK"},
		{"msgtype all", subValue("c", "d", "all", ep, p256URL, authURL, ""), "OK"},
		{"msgtype any", subValue("c", "d", "any", ep, p256URL, authURL, ""), "OK"},
		{"msgtype Chat", subValue("c", "d", "Chat", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: msgtype"},
		{"msgtype missing", subValue("c", "d", "", ep, p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: msgtype"},

		{"no resource", []byte(`{"client":"c","device":"d","msgtype":"chat"}`), "NO [CANNOT] Invalid subscription: endpoint"},
		{"resource a string", []byte(`{"client":"c","device":"d","msgtype":"chat","resource":"x"}`), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint missing", subValue("c", "d", "chat", "", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint http", subValue("c", "d", "chat", "http://push.example.net/p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint HTTPS", subValue("c", "d", "chat", "HTTPS://push.example.net/p", p256URL, authURL, ""), "OK"},
		{"endpoint relative", subValue("c", "d", "chat", "/p/abc123", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint opaque", subValue("c", "d", "chat", "https:push.example.net", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint no host", subValue("c", "d", "chat", "https:///p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint user info", subValue("c", "d", "chat", "https://u:pw@push.example.net/p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint fragment", subValue("c", "d", "chat", "https://push.example.net/p#f", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint port 0", subValue("c", "d", "chat", "https://push.example.net:0/p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint port 65536", subValue("c", "d", "chat", "https://push.example.net:65536/p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint empty port", subValue("c", "d", "chat", "https://push.example.net:/p", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint port 8443", subValue("c", "d", "chat", "https://push.example.net:8443/p", p256URL, authURL, ""), "OK"},
		{"endpoint with space", subValue("c", "d", "chat", "https://push.example.net/a b", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint with CRLF", subValue("c", "d", "chat", "https://push.example.net/a\r\nX: y", p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},
		{"endpoint 1024 bytes", subValue("c", "d", "chat", "https://push.example.net/"+long(1024-25), p256URL, authURL, ""), "OK"},
		{"endpoint 1025 bytes", subValue("c", "d", "chat", "https://push.example.net/"+long(1025-25), p256URL, authURL, ""), "NO [CANNOT] Invalid subscription: endpoint"},

		{"keys missing", []byte(`{"client":"c","device":"d","msgtype":"chat","resource":{"endpoint":"https://push.example.net/p"}}`), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh missing", subValue("c", "d", "chat", ep, "", authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh standard alphabet, padded", subValue("c", "d", "chat", ep, p256Std, authURL, ""), "OK"},
		{"p256dh standard alphabet, unpadded", subValue("c", "d", "chat", ep, strings.TrimRight(p256Std, "="), authURL, ""), "OK"},
		{"p256dh url alphabet, padded", subValue("c", "d", "chat", ep, p256URL+"=", authURL, ""), "OK"},
		{"p256dh wrong padding", subValue("c", "d", "chat", ep, p256URL+"==", authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh mixed alphabets", subValue("c", "d", "chat", ep, "BCVxsr7N/eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh with a line break", subValue("c", "d", "chat", ep, p256URL[:40]+"\n"+p256URL[40:], authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh off the curve", subValue("c", "d", "chat", ep, offCurve, authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh compressed", subValue("c", "d", "chat", ep, compressed, authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh 64 bytes", subValue("c", "d", "chat", ep, p256URL[:len(p256URL)-2], authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},
		{"p256dh a number", subValue("c", "d", "chat", ep, "!1", authURL, ""), "NO [CANNOT] Invalid subscription: p256dh"},

		{"auth missing", subValue("c", "d", "chat", ep, p256URL, "", ""), "NO [CANNOT] Invalid subscription: auth"},
		{"auth standard alphabet", subValue("c", "d", "chat", ep, p256URL, authStd, ""), "OK"},
		{"auth 15 bytes", subValue("c", "d", "chat", ep, p256URL, "BTBZMqHH6r4Tts7J_aSI", ""), "NO [CANNOT] Invalid subscription: auth"},
		{"auth 17 bytes", subValue("c", "d", "chat", ep, p256URL, "BTBZMqHH6r4Tts7J_aSIggA", ""), "NO [CANNOT] Invalid subscription: auth"},
		{"another key under keys", []byte(`{"client":"c","device":"d","msgtype":"chat","resource":{"endpoint":"https://push.example.net/p","keys":{"p256dh":"` + p256URL + `","auth":"` + authURL + `","x":"y"}}}`), "NO [CANNOT] Invalid subscription: auth"},

		{"exclude_from 10", okValue(`,"exclude_from":["a@x","b@x","c@x","d@x","e@x","f@x","g@x","h@x","i@x","j@x"]`), "OK"},
		{"exclude_from 11", okValue(`,"exclude_from":["a@x","b@x","c@x","d@x","e@x","f@x","g@x","h@x","i@x","j@x","k@x"]`), "NO [CANNOT] Invalid subscription: exclude_from"},
		{"exclude_from empty", okValue(`,"exclude_from":[]`), "OK"},
		{"exclude_from null", okValue(`,"exclude_from":null`), "OK"},
		{"exclude_from a string", okValue(`,"exclude_from":"a@x"`), "NO [CANNOT] Invalid subscription: exclude_from"},
		{"exclude_from a number inside", okValue(`,"exclude_from":["a@x",1]`), "NO [CANNOT] Invalid subscription: exclude_from"},
		{"exclude_from an empty string", okValue(`,"exclude_from":[""]`), "NO [CANNOT] Invalid subscription: exclude_from"},
		{"exclude_from a line break", okValue(`,"exclude_from":["a@x\r\n"]`), "NO [CANNOT] Invalid subscription: exclude_from"},

		{"unknown and server fields ignored", okValue(`,"foo":{"bar":[1]},"created":"x","validated":true,"validation":"y"`), "OK"},
		{"first failing field wins", subValue("", "", "x", "http://x", "x", "x", ""), "NO [CANNOT] Invalid subscription: client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := ParseSubscription(tc.value)
			if got := noText(err); got != tc.want {
				t.Fatalf("ParseSubscription(%.200s) = %s, want %s", tc.value, got, tc.want)
			}
			if err != nil {
				return
			}
			// What was accepted must come back out in the public form, keys as sent,
			// and nothing else of the client's.
			pub := sub.PublicJSON()
			if !json.Valid(pub) {
				t.Fatalf("public form is not JSON: %s", pub)
			}
			for _, not := range []string{`"foo"`, `"validation"`, `"x"`, `"pad"`} {
				if bytes.Contains(pub, []byte(not)) {
					t.Fatalf("public form has %s: %s", not, pub)
				}
			}
			if !bytes.Contains(pub, []byte(`"p256dh":"`+sub.P256DH+`"`)) || !bytes.Contains(pub, []byte(`"validated":false`)) {
				t.Fatalf("public form %s lost the keys as sent or the server's validated", pub)
			}
		})
	}
}

func TestExcludeFromEchoed(t *testing.T) {
	sub, err := ParseSubscription(okValue(`,"exclude_from":["Bob@Example.org","<x>\"y"]`))
	if err != nil {
		t.Fatal(err)
	}
	want := `"auth":"` + authURL + `"}},"exclude_from":["Bob@Example.org","<x>\"y"]}`
	if pub := string(sub.PublicJSON()); !strings.HasSuffix(pub, want) {
		t.Fatalf("public form %s, want it to end with %s", pub, want)
	}
	sub, _ = ParseSubscription(okValue(`,"exclude_from":[]`))
	if pub := string(sub.PublicJSON()); !strings.HasSuffix(pub, `"exclude_from":[]}`) {
		t.Fatalf("empty exclude_from not echoed: %s", pub)
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"31754ee7-d3ee-4226-b112-6895ed26fcf8", true},
		{"a", true},
		{"!~#$&'()+,-.:;<=>?@[]^_`{|}", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"a/b", false},
		{"a*", false},
		{"a%", false},
		{`a"`, false},
		{`a\`, false},
		{"a b", false},
		{"a\x7f", false},
		{"ä", false},
	} {
		if got := ValidID(tc.id); got != tc.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}

func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind EntryKind
		id   string
	}{
		{VapidEntry, EntryVapid, ""},
		{SubscriptionsEntry, EntrySubscriptions, ""},
		{SubscriptionsEntry + "/abc", EntrySubscription, "abc"},
		{SubscriptionsEntry + "/abc/validate", EntryValidate, "abc"},
		{SubscriptionsEntry + "/", EntrySubscription, ""},
		{SubscriptionsEntry + "/a/b", EntrySubscription, "a/b"},
		{SubscriptionsEntry + "//validate", EntrySubscription, "/validate"},
		{EntryPrefix + "/other", EntryOther, ""},
		{EntryPrefix, EntryOther, ""},
		{"/private/comment", EntryOther, ""},
	} {
		kind, id := ParseEntry(tc.name)
		if kind != tc.kind || id != tc.id {
			t.Errorf("ParseEntry(%q) = %v %q, want %v %q", tc.name, kind, id, tc.kind, tc.id)
		}
	}
	if got := SubscriptionEntry("x"); got != SubscriptionsEntry+"/x" {
		t.Errorf("SubscriptionEntry = %q", got)
	}
}

// TestSubscribeRules covers what Subscribe adds to the parser: the id, the
// public-address rule, the limit and the throttle (§8.3), the validation push's
// failures (§8.4 step 3).
func TestSubscribeRules(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	clock := &fixedClock{t: time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)}
	s := newService(t, key, pool, st, func(o *Options) { o.Now = clock.now })
	ua := newUserAgent(t)
	good := ua.subJSON(ep.add("/ok", ua), "chat", "")

	t.Run("invalid id", func(t *testing.T) {
		_, err := s.Subscribe(t.Context(), 1, "a/b", good, nil)
		if got := noText(err); got != "NO [CANNOT] Invalid subscription ID" {
			t.Fatal(got)
		}
	})

	t.Run("non-public endpoints", func(t *testing.T) {
		strict := newService(t, key, pool, st, func(o *Options) { o.AllowEndpoints = nil })
		for _, e := range []string{
			ep.srv.URL + "/ok", // 127.0.0.1:port
			"https://localhost/x",
			"https://10.1.2.3/x",
			"https://172.16.0.1/x",
			"https://192.168.1.1/x",
			"https://169.254.169.254/latest/meta-data",
			"https://[::1]/x",
			"https://[fe80::1]/x",
			"https://[fd00::1]/x",
			"https://[::ffff:127.0.0.1]/x",
			"https://224.0.0.1/x",
			"https://0.0.0.0/x",
			"https://100.100.100.200/x",
		} {
			_, err := strict.Subscribe(t.Context(), 2, "id", ua.subJSON(e, "chat", ""), nil)
			if got := noText(err); got != "NO [CANNOT] Invalid subscription: endpoint" {
				t.Errorf("%s: %s", e, got)
			}
		}
		ep.none(t, 20*time.Millisecond)
	})

	t.Run("allow-list port", func(t *testing.T) {
		other := newService(t, key, pool, st, func(o *Options) { o.AllowEndpoints = []string{"127.0.0.1:1"} })
		_, err := other.Subscribe(t.Context(), 3, "id", good, nil)
		if got := noText(err); got != "NO [CANNOT] Invalid subscription: endpoint" {
			t.Fatal(got)
		}
	})

	t.Run("limit", func(t *testing.T) {
		cur := map[string][]byte{}
		for i := range 10 {
			cur[fmt.Sprint("s", i)] = validated(t, ua, ep.srv.URL+"/ok", "chat", "", clock.now())
		}
		if _, err := s.Subscribe(t.Context(), 4, "new", good, cur); noText(err) != "NO [LIMIT] Too many subscriptions, delete old ones first" {
			t.Fatalf("new id at the limit: %s", noText(err))
		}
		// D6: replacing an existing id never counts.
		if _, err := s.Subscribe(t.Context(), 4, "s3", good, cur); err != nil {
			t.Fatalf("replacing at the limit: %s", noText(err))
		}
		ep.next(t)
		// A pending subscription past its window no longer counts.
		stale, err := s.Subscribe(t.Context(), 4, "s9", good, nil)
		if err != nil {
			t.Fatal(noText(err))
		}
		ep.next(t)
		cur["s9"] = stale
		clock.add(6 * time.Minute)
		if _, err := s.Subscribe(t.Context(), 4, "new", good, cur); err != nil {
			t.Fatalf("limit counted an expired pending subscription: %s", noText(err))
		}
		ep.next(t)
	})

	t.Run("throttle", func(t *testing.T) {
		bad := []byte(`{}`)
		for i := range 20 {
			if _, err := s.Subscribe(t.Context(), 5, "id", bad, nil); noText(err) != "NO [CANNOT] Invalid subscription: client" {
				t.Fatalf("attempt %d: %s", i+1, noText(err))
			}
		}
		if _, err := s.Subscribe(t.Context(), 5, "id", good, nil); noText(err) != "NO [LIMIT] Too many subscription attempts, try again later" {
			t.Fatalf("attempt 21: %s", noText(err))
		}
		// Another account is not affected.
		if _, err := s.Subscribe(t.Context(), 6, "id", good, nil); err != nil {
			t.Fatalf("other account: %s", noText(err))
		}
		ep.next(t)
		clock.add(time.Hour + time.Second)
		if _, err := s.Subscribe(t.Context(), 5, "id", good, nil); err != nil {
			t.Fatalf("an hour later: %s", noText(err))
		}
		ep.next(t)
	})

	t.Run("validation push fails", func(t *testing.T) {
		ep.mu.Lock()
		ep.answer = func(path string, _ int) (int, http.Header) {
			switch path {
			case "/400":
				return http.StatusBadRequest, nil
			case "/500":
				return http.StatusInternalServerError, nil
			case "/200":
				return http.StatusOK, nil
			case "/202":
				return http.StatusAccepted, nil
			case "/slow":
				time.Sleep(300 * time.Millisecond)
			}
			return http.StatusCreated, nil
		}
		ep.mu.Unlock()
		defer func() { ep.mu.Lock(); ep.answer = nil; ep.mu.Unlock() }()
		quick := newService(t, key, pool, st, func(o *Options) { o.Timeout = 100 * time.Millisecond })
		untrusting := newService(t, key, nil, st, nil)
		closed := "https://127.0.0.1:1/x"
		for _, tc := range []struct {
			s    *Service
			url  string
			want string
		}{
			{s, ep.add("/400", ua), "NO [UNAVAILABLE] Failed to start endpoint validation: HTTP 400"},
			{s, ep.add("/500", ua), "NO [UNAVAILABLE] Failed to start endpoint validation: HTTP 500"},
			{s, ep.add("/200", ua), "OK"}, // D4: any 2xx
			{s, ep.add("/202", ua), "OK"},
			{quick, ep.add("/slow", ua), "NO [UNAVAILABLE] Failed to start endpoint validation: timeout"},
			{untrusting, ep.add("/ok", ua), "NO [UNAVAILABLE] Failed to start endpoint validation: TLS error"},
			{s, closed, "NO [UNAVAILABLE] Failed to start endpoint validation: connection failed"},
		} {
			stored, err := tc.s.Subscribe(t.Context(), 7, "id", ua.subJSON(tc.url, "chat", ""), nil)
			if got := noText(err); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.url, got, tc.want)
			}
			if (err == nil) != (stored != nil) {
				t.Errorf("%s: stored %q with error %v", tc.url, stored, err)
			}
		}
		for len(ep.got) > 0 {
			<-ep.got
		}
	})

	t.Run("failures are logged with the host only", func(t *testing.T) {
		var buf bytes.Buffer
		logged := newService(t, key, pool, st, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		_, err := logged.Subscribe(t.Context(), 8, "id", ua.subJSON("https://127.0.0.1:1/device-secret", "chat", ""), nil)
		if err == nil {
			t.Fatal("closed port accepted")
		}
		if strings.Contains(buf.String(), "device-secret") || strings.Contains(fmt.Sprint(errors.Unwrap(err)), "device-secret") {
			t.Fatalf("the endpoint's path leaked: %s / %v", buf.String(), errors.Unwrap(err))
		}
		if !strings.Contains(buf.String(), "127.0.0.1:1") {
			t.Fatalf("the host is not logged: %s", buf.String())
		}
	})
}

// TestValidate covers §8.4 step 4 and 5.
func TestValidate(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	clock := &fixedClock{t: time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)}
	s := newService(t, key, pool, st, func(o *Options) { o.Now = clock.now })
	ua := newUserAgent(t)
	value := ua.subJSON(ep.add("/v", ua), "all", "")

	subscribe := func(id string) ([]byte, string) {
		t.Helper()
		stored, err := s.Subscribe(t.Context(), 1, id, value, nil)
		if err != nil {
			t.Fatal(noText(err))
		}
		st.put(1, id, stored)
		var v struct{ Validation string }
		if err := json.Unmarshal(ep.next(t).plain, &v); err != nil || len(v.Validation) != 44 {
			t.Fatalf("validation push %q: %v", v.Validation, err)
		}
		return stored, v.Validation
	}

	stored, token := subscribe("a")
	if pub, ok := s.Public(stored); !ok || strings.Contains(string(pub), token) || !strings.Contains(string(pub), `"validated":false`) {
		t.Fatalf("pending public form %s (%v) shows the token or not pending", pub, ok)
	}
	for _, tc := range []struct {
		name          string
		stored, value []byte
		want          string
	}{
		{"NIL", stored, nil, "NO [CANNOT] Can't unset validation key"},
		{"unknown id", nil, []byte(token), "NO [CANNOT] invalid validation"},
		{"wrong string", stored, []byte("ZZZ000"), "NO [CANNOT] invalid validation"},
		{"prefix of the string", stored, []byte(token[:43]), "NO [CANNOT] invalid validation"},
		{"damaged entry", []byte("{"), []byte(token), "NO [CANNOT] invalid validation"},
	} {
		if _, err := s.Validate(1, "a", tc.stored, tc.value); noText(err) != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, noText(err), tc.want)
		}
	}
	clock.add(5 * time.Minute) // the window's last moment still counts
	done, err := s.Validate(1, "a", stored, []byte(token))
	if err != nil {
		t.Fatalf("right string within the window: %s", noText(err))
	}
	if _, err := s.Validate(1, "a", done, []byte(token)); noText(err) != "NO [CANNOT] invalid validation" {
		t.Fatalf("already validated: %s", noText(err))
	}

	// Re-SET restarts as pending with a new string (§8.4 step 5).
	stored2, token2 := subscribe("a")
	if token2 == token {
		t.Fatal("re-SET reused the validation string")
	}
	if _, err := s.Validate(1, "a", stored2, []byte(token)); err == nil {
		t.Fatal("the old string validated the re-SET subscription")
	}

	// Past the window: invalid, hidden, and swept.
	stale, staleToken := subscribe("b")
	keep, keepToken := subscribe("c")
	clock.add(5*time.Minute + time.Second)
	if _, err := s.Validate(1, "b", stale, []byte(staleToken)); noText(err) != "NO [CANNOT] invalid validation" {
		t.Fatalf("expired: %s", noText(err))
	}
	if _, ok := s.Public(stale); ok {
		t.Fatal("an expired pending subscription is shown")
	}
	// c was validated in time but the caller stored the new value: the sweep's
	// compare-and-delete must spare it.
	clock.add(-5 * time.Minute)
	validatedC, err := s.Validate(1, "c", keep, []byte(keepToken))
	if err != nil {
		t.Fatal(noText(err))
	}
	st.put(1, "c", validatedC)
	clock.add(5 * time.Minute)
	s.sweep(t.Context())
	removed := map[string]bool{}
	for len(st.removed) > 0 {
		removed[<-st.removed] = true
	}
	if !removed["b"] || removed["c"] {
		t.Fatalf("sweep removed %v, want b and not c", removed)
	}
	if st.get(1, "b") != nil || st.get(1, "c") == nil {
		t.Fatalf("after the sweep b=%q c=%q", st.get(1, "b"), st.get(1, "c"))
	}
	if pub, ok := s.Public(validatedC); !ok || !strings.Contains(string(pub), `"validated":true`) {
		t.Fatalf("validated subscription shown as %s %v", pub, ok)
	}
}

func TestStoredRoundTrip(t *testing.T) {
	sub, err := ParseSubscription(okValue(`,"exclude_from":["a@x"]`))
	if err != nil {
		t.Fatal(err)
	}
	sub.Created = time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
	sub.validation = "secret"
	got, err := DecodeStored(sub.encodeStored())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PublicJSON()) != string(sub.PublicJSON()) || got.validation != "secret" || got.Validated {
		t.Fatalf("round trip: %s %q %v", got.PublicJSON(), got.validation, got.Validated)
	}
	for _, bad := range []string{
		"", "{}", string(okValue("")), // no created
		strings.Replace(string(sub.encodeStored()), `"validation":"secret"`, `"validation":""`, 1), // pending, no string
	} {
		if _, err := DecodeStored([]byte(bad)); err == nil {
			t.Errorf("DecodeStored(%.80q) accepted", bad)
		}
	}
}
