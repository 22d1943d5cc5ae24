package webpush

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const chatMessage = "From: Alice <Alice@Example.org>\r\n" +
	"Subject: hi\r\n" +
	"Date: Tue, 01 Sep 2026 12:00:00 +0200\r\n" +
	"Message-ID: <chat$group.g1.x@example.org>\r\n" +
	"Chat-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"hello"

// TestNotify is the whole path: a delivery, the account's subscriptions, the
// filters, and at the local endpoint a decrypted payload and a verified VAPID token.
func TestNotify(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, nil)
	run(t, s)
	now := time.Now()
	chat, mail, all, excl, pending := newUserAgent(t), newUserAgent(t), newUserAgent(t), newUserAgent(t), newUserAgent(t)
	st.put(1, "chat", validated(t, chat, ep.add("/chat", chat), "chat", "", now))
	st.put(1, "mail", validated(t, mail, ep.add("/mail", mail), "mail", "", now))
	st.put(1, "all", validated(t, all, ep.add("/all", all), "any", "", now))
	st.put(1, "excl", validated(t, excl, ep.add("/excl", excl), "all", `,"exclude_from":["ALICE@example.org"]`, now))
	sub, _ := ParseSubscription(pending.subJSON(ep.add("/pending", pending), "all", ""))
	sub.Created, sub.validation = now, "x"
	st.put(1, "pending", sub.encodeStored())
	st.put(2, "other", validated(t, chat, ep.add("/chat", chat), "all", "", now))

	s.Notify(Delivery{Account: 1, Mailbox: "COI/Chats", UIDValidity: 7, UID: 3, Chat: true, Message: []byte(chatMessage)})
	var paths []string
	for range 2 {
		r := ep.next(t)
		paths = append(paths, r.path)
		want := `{"folder":"COI/Chats","uidvalidity":7,"uid":3,"date":"2026-09-01T10:00:00+00:00","from-email":"alice@example.org","from-name":"Alice","subject":"hi","msg-id":"<chat$group.g1.x@example.org>","group-id":"g1","content":"hello"}`
		if string(r.plain) != want {
			t.Fatalf("%s: payload\n%s\nwant\n%s", r.path, r.plain, want)
		}
		if r.claims.Aud != ep.srv.URL || r.claims.Sub != "mailto:postmaster@example.org" {
			t.Fatalf("%s: claims %+v, want aud %s", r.path, r.claims, ep.srv.URL)
		}
		if exp := time.Unix(r.claims.Exp, 0); exp.Before(now.Add(12*time.Hour-time.Minute)) || exp.After(time.Now().Add(12*time.Hour+time.Minute)) {
			t.Fatalf("exp %v is not now+12h", exp)
		}
		h := r.header
		if h.Get("TTL") != "30" || h.Get("Content-Encoding") != "aes128gcm" || h.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("headers %v", h)
		}
		for _, not := range []string{"Webpush-Validation", "User-Agent", "Accept-Encoding"} {
			if _, ok := h[not]; ok {
				t.Fatalf("header %s sent: %v", not, h)
			}
		}
		if r.bodyLen != 86+len(want)+1+16 {
			t.Fatalf("body of %d bytes: padded without webpush.padding", r.bodyLen)
		}
	}
	slices.Sort(paths)
	if !slices.Equal(paths, []string{"/all", "/chat"}) {
		t.Fatalf("chat delivery pushed to %v, want /all and /chat (mail, excluded sender and pending skipped)", paths)
	}
	ep.none(t, 100*time.Millisecond)

	// A plain mail from someone else: mail and all and excl, not chat.
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UIDValidity: 1, UID: 4, Message: []byte("From: bob@example.org\r\n\r\nx")})
	paths = nil
	for range 3 {
		paths = append(paths, ep.next(t).path)
	}
	slices.Sort(paths)
	if !slices.Equal(paths, []string{"/all", "/excl", "/mail"}) {
		t.Fatalf("mail delivery pushed to %v", paths)
	}
	// An MDN pushes nothing (§8.6).
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: 5, Message: []byte("Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n")})
	ep.none(t, 100*time.Millisecond)
}

func TestNotifyPadding(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, func(o *Options) { o.Padding = true; o.TTL = 90 * time.Second })
	run(t, s)
	ua := newUserAgent(t)
	st.put(1, "a", validated(t, ua, ep.add("/a", ua), "all", "", time.Now()))
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: 1, Message: []byte("Subject: s\r\n\r\nbody")})
	r := ep.next(t)
	if r.bodyLen != 1024 || r.header.Get("TTL") != "90" {
		t.Fatalf("padded body %d bytes, TTL %s", r.bodyLen, r.header.Get("TTL"))
	}
	var p map[string]any
	if err := json.Unmarshal(r.plain, &p); err != nil || p["subject"] != "s" {
		t.Fatalf("payload %s: %v", r.plain, err)
	}
}

// TestResponses is §8.10's table.
func TestResponses(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, nil)
	run(t, s)
	var answersMu sync.Mutex
	answers := map[string][]int{}
	setAnswers := func(path string, codes ...int) {
		answersMu.Lock()
		answers[path] = codes
		answersMu.Unlock()
	}
	ep.answer = func(path string, n int) (int, http.Header) {
		answersMu.Lock()
		codes := answers[path]
		answersMu.Unlock()
		if n > len(codes) {
			return http.StatusCreated, nil
		}
		if codes[n-1] == http.StatusTooManyRequests {
			return codes[n-1], http.Header{"Retry-After": {"0"}}
		}
		return codes[n-1], nil
	}
	deliver := func(account int64) {
		s.Notify(Delivery{Account: account, Mailbox: "INBOX", UID: 1, Message: []byte("\r\nx")})
	}
	count := func(path string) int {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return ep.counts[path]
	}
	drain := func(n int) {
		t.Helper()
		for range n {
			ep.next(t)
		}
	}
	removedNow := func(id string) {
		t.Helper()
		select {
		case got := <-st.removed:
			if got != id {
				t.Fatalf("removed %s, want %s", got, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not removed", id)
		}
	}
	notRemoved := func() {
		t.Helper()
		select {
		case got := <-st.removed:
			t.Fatalf("%s removed", got)
		case <-time.After(100 * time.Millisecond):
		}
	}

	for i, tc := range []struct {
		name     string
		codes    []int
		requests int  // for one delivery
		removed  bool // after it
	}{
		{"200", []int{200}, 1, false},
		{"202", []int{202}, 1, false},
		{"404", []int{404}, 1, true},
		{"410", []int{410}, 1, true},
		{"503 then 201", []int{503, 201}, 2, false},
		{"500 502 then 201", []int{500, 502}, 3, false},
		{"429 (Retry-After) then 201", []int{429}, 2, false},
		{"503 three times: give up, keep", []int{503, 503, 503}, 3, false},
		{"400 once", []int{400}, 1, false},
		{"301 is not followed", []int{301}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			account := int64(100 + i)
			ua := newUserAgent(t)
			path := fmt.Sprint("/r", i)
			setAnswers(path, tc.codes...)
			url := ep.add(path, ua)
			st.put(account, "id", validated(t, ua, url, "all", "", time.Now()))
			deliver(account)
			drain(tc.requests)
			if tc.removed {
				removedNow("id")
				if st.get(account, "id") != nil {
					t.Fatal("still stored")
				}
			} else {
				notRemoved()
				if st.get(account, "id") == nil {
					t.Fatal("deleted")
				}
			}
			ep.none(t, 150*time.Millisecond) // retries of 20 and 40 ms are over
			if n := count(path); n != tc.requests {
				t.Fatalf("%d requests, want %d", n, tc.requests)
			}
		})
	}

	t.Run("three refusals in a row delete", func(t *testing.T) {
		ua := newUserAgent(t)
		setAnswers("/refuse", 403, 201, 400, 413, 401)
		st.put(200, "id", validated(t, ua, ep.add("/refuse", ua), "all", "", time.Now()))
		for range 4 { // 403, then a 201 resets, then 400 and 413
			deliver(200)
			drain(1)
			notRemoved()
		}
		deliver(200) // the third refusal after the 201
		drain(1)
		removedNow("id")
	})

	t.Run("a 410 never deletes a re-SET subscription", func(t *testing.T) {
		ua := newUserAgent(t)
		setAnswers("/old", 410)
		st.put(201, "id", validated(t, ua, ep.add("/old", ua), "all", "", time.Now()))
		// The client re-SETs the id between the fan-out and the answer.
		ep.mu.Lock()
		answer := ep.answer
		ep.answer = func(path string, n int) (int, http.Header) {
			if path == "/old" {
				st.put(201, "id", []byte("re-SET"))
			}
			return answer(path, n)
		}
		ep.mu.Unlock()
		deliver(201)
		drain(1)
		removedNow("id")
		if string(st.get(201, "id")) != "re-SET" {
			t.Fatal("the new subscription was deleted")
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              -1,
		"x":                             -1,
		"-1":                            -1,
		"0":                             0,
		"7":                             7 * time.Second,
		"300":                           300 * time.Second,
		"301":                           300 * time.Second,
		"99999999999999999":             300 * time.Second,
		"Tue, 01 Sep 2026 10:00:30 GMT": 30 * time.Second,
		"Tue, 01 Sep 2026 09:00:00 GMT": 0,
		"Tue, 01 Sep 2026 11:00:00 GMT": 300 * time.Second,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestRetryAfterHonoured: a real wait of one second before the retry.
func TestRetryAfterHonoured(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, nil)
	run(t, s)
	ep.answer = func(_ string, n int) (int, http.Header) {
		if n == 1 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusCreated, nil
	}
	ua := newUserAgent(t)
	st.put(1, "id", validated(t, ua, ep.add("/ra", ua), "all", "", time.Now()))
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: 1})
	first := ep.next(t)
	second := ep.next(t)
	if d := second.at.Sub(first.at); d < time.Second || d > 3*time.Second {
		t.Fatalf("retry after %v, want Retry-After's 1 s (not the 20 ms backoff)", d)
	}
}

// TestPublicAddressRule: without the allow-list nothing reaches loopback, whatever
// the stored endpoint says and however its name resolves (D10).
func TestPublicAddressRule(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, func(o *Options) { o.AllowEndpoints = nil })
	ua := newUserAgent(t)
	_, port, _ := net.SplitHostPort(ep.srv.Listener.Addr().String())
	for _, url := range []string{
		ep.add("/direct", ua),                 // https://127.0.0.1:port
		"https://localhost:" + port + "/name", // a name resolving to loopback at dial time
		"https://[::ffff:127.0.0.1]:" + port + "/mapped",
	} {
		sub, err := ParseSubscription(ua.subJSON(url, "all", ""))
		if err != nil {
			t.Fatal(err)
		}
		res := s.post(t.Context(), sub, []byte("{}"), false)
		if !errors.Is(res.err, errNotPublic) {
			t.Errorf("%s: %v (status %d), want the address refused", url, res.err, res.status)
		}
	}
	// Through the notifier too: the queued request is refused and the
	// subscription kept (a connection failure is retried, not a reason to delete).
	run(t, s)
	st.put(1, "id", validated(t, ua, ep.add("/direct", ua), "all", "", time.Now()))
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: 1})
	ep.none(t, 300*time.Millisecond)
	if st.get(1, "id") == nil {
		t.Fatal("subscription deleted")
	}
	// And the same endpoint once allow-listed by host:port.
	allowed := newService(t, key, pool, st, func(o *Options) { o.AllowEndpoints = []string{"127.0.0.1:" + port} })
	sub, _ := ParseSubscription(ua.subJSON(ep.add("/direct", ua), "all", ""))
	if res := allowed.post(t.Context(), sub, []byte("{}"), false); res.err != nil || res.status != http.StatusCreated {
		t.Fatalf("allow-listed: %d %v", res.status, res.err)
	}
	ep.next(t)
}

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"8.8.8.8", true}, {"2001:4860:4860::8888", true}, {"192.0.2.1", true},
		{"127.0.0.1", false}, {"127.1.2.3", false}, {"::1", false}, {"10.0.0.1", false},
		{"172.31.255.255", false}, {"192.168.0.1", false}, {"169.254.169.254", false},
		{"fe80::1", false}, {"fd12::1", false}, {"224.0.0.1", false}, {"ff02::1", false},
		{"0.0.0.0", false}, {"::", false}, {"::ffff:10.0.0.1", false}, {"100.64.0.1", false},
		{"255.255.255.255", false}, {"64:ff9b::a00:1", false}, {"198.18.0.1", false},
	} {
		a, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := publicAddr(a); got != tc.ok {
			t.Errorf("publicAddr(%s) = %v, want %v", tc.addr, got, tc.ok)
		}
	}
	l, err := newAllowList([]string{"Push.Example.NET.", "127.0.0.1:8443", "[::1]:443", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, port string
		ok         bool
	}{
		{"push.example.net", "443", true}, {"push.example.net", "1", true},
		{"127.0.0.1", "8443", true}, {"127.0.0.1", "443", false},
		{"[::1]", "443", true}, {"::1", "9", true}, {"other", "443", false},
	} {
		if got := l.allows(tc.host, tc.port); got != tc.ok {
			t.Errorf("allows(%s, %s) = %v", tc.host, tc.port, got)
		}
	}
	for _, bad := range []string{"", "a b", "host:0", "host:x", "https://host"} {
		if _, err := newAllowList([]string{bad}); err == nil {
			t.Errorf("allow-list entry %q accepted", bad)
		}
	}
}

// TestNotifyNeverBlocks: with the only worker stuck on an endpoint that never
// answers, Notify still returns at once and drops what does not fit (D9).
func TestNotifyNeverBlocks(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, func(o *Options) { o.Workers = 1; o.QueueSize = 4; o.Timeout = 2 * time.Second })
	run(t, s)
	release := make(chan struct{})
	defer close(release)
	ep.answer = func(string, int) (int, http.Header) {
		<-release
		return http.StatusCreated, nil
	}
	ua := newUserAgent(t)
	st.put(1, "id", validated(t, ua, ep.add("/stuck", ua), "all", "", time.Now()))
	var loads atomic.Int32
	s.o.Load = func(ctx context.Context, account int64) (map[string][]byte, error) {
		loads.Add(1)
		return st.load(ctx, account)
	}
	s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: 1, Message: []byte(chatMessage)})
	<-ep.got // the worker is now inside the stuck request
	start := time.Now()
	for i := range 10000 {
		s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: uint32(i), Message: []byte(chatMessage)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("10000 Notify calls took %v with a stuck endpoint", d)
	}
	if n := len(s.deliveries); n != 4 {
		t.Fatalf("queue holds %d, want its bound 4", n)
	}
}

// TestNotifyLatency measures how soon a notification leaves after Notify with a
// local endpoint (issue 10: within 50 ms, median).
func TestNotifyLatency(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	st := newMemStore()
	s := newService(t, key, pool, st, nil)
	run(t, s)
	ua := newUserAgent(t)
	st.put(1, "id", validated(t, ua, ep.add("/lat", ua), "all", "", time.Now()))
	var lat []time.Duration
	for i := range 21 {
		start := time.Now()
		s.Notify(Delivery{Account: 1, Mailbox: "INBOX", UID: uint32(i), Message: []byte(chatMessage)})
		r := ep.next(t)
		lat = append(lat, r.at.Sub(start))
	}
	slices.Sort(lat)
	median := lat[len(lat)/2]
	t.Logf("Notify to endpoint: median %v, max %v (first includes the TLS handshake)", median, lat[len(lat)-1])
	if median > 50*time.Millisecond {
		t.Fatalf("median %v over 50 ms", median)
	}
}

// TestHTTPSProxy: with webpush.https_proxy set, requests go through it (a CONNECT
// tunnel); the proxy, configured by the admin, is dialled although it is on loopback.
func TestHTTPSProxy(t *testing.T) {
	key := testKey(t)
	ep, pool := newEndpoint(t, key)
	var connects atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		connects.Add(1)
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		rw.Flush()
		go func() { io.Copy(up, conn); up.Close() }()
		io.Copy(conn, up)
		conn.Close()
	}))
	defer proxy.Close()
	st := newMemStore()
	s := newService(t, key, pool, st, func(o *Options) {
		o.AllowEndpoints = []string{"127.0.0.1"} // for Subscribe's own check of the literal
		o.HTTPSProxy = proxy.URL
	})
	ua := newUserAgent(t)
	if _, err := s.Subscribe(t.Context(), 1, "id", ua.subJSON(ep.add("/via", ua), "all", ""), nil); err != nil {
		t.Fatal(noText(err))
	}
	ep.next(t)
	if connects.Load() != 1 {
		t.Fatalf("%d CONNECTs, want the validation push through the proxy", connects.Load())
	}
	// Without any allow-list the loopback proxy is still dialled: the address rule
	// applies to endpoints, and behind a proxy the proxy connects (invariant 4).
	bare := newService(t, key, pool, st, func(o *Options) {
		o.AllowEndpoints = nil
		o.HTTPSProxy = proxy.URL
	})
	run(t, bare)
	st.put(2, "id", validated(t, ua, ep.add("/via", ua), "all", "", time.Now()))
	bare.Notify(Delivery{Account: 2, Mailbox: "INBOX", UID: 1})
	ep.next(t)
	if connects.Load() != 2 {
		t.Fatalf("%d CONNECTs, want 2", connects.Load())
	}
}
