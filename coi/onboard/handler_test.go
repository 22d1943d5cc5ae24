package onboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the handler's clock in tests, so that rate limits need no sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testDomains are the chatmail domains of the handler tests.
func testDomains() map[string]Info {
	return map[string]Info{
		"chat.example":   {Name: "chat.example", RegistrationOpen: true, PasswordMin: 9},
		"closed.example": {Name: "closed.example", RegistrationOpen: false, PasswordMin: 9},
		"_self.example":  {Name: "_self.example", RegistrationOpen: true, PasswordMin: 12, SelfSigned: true},
		"broken.example": {Name: "broken.example", RegistrationOpen: true, PasswordMin: 9},
	}
}

type testServer struct {
	h      *Handler
	clock  *fakeClock
	mu     sync.Mutex
	hosts  []string // as Domain saw them
	taken  map[string]bool
	broken error
}

func newTestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	ts := &testServer{clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}, taken: map[string]bool{}, broken: errors.New("disk on fire")}
	domains := testDomains()
	opts.Domain = func(ctx context.Context, host string) (Info, bool) {
		ts.mu.Lock()
		ts.hosts = append(ts.hosts, host)
		ts.mu.Unlock()
		info, ok := domains[host]
		return info, ok
	}
	opts.Exists = func(ctx context.Context, addr string) (bool, error) {
		if strings.HasSuffix(addr, "@broken.example") {
			return false, ts.broken
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.taken[addr], nil
	}
	opts.Now = ts.clock.Now
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.h = h
	return ts
}

// do sends one request from remote to host.
func (ts *testServer) do(method, host, path, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://"+host+path, strings.NewReader("ignored body"))
	r.Host = host
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	ts.h.ServeHTTP(w, r)
	return w
}

func TestNewHandlerNeedsLookups(t *testing.T) {
	if _, err := NewHandler(Options{}); err == nil {
		t.Fatal("NewHandler without Domain and Exists succeeded")
	}
}

// TestEndpoints checks every status, header and fixed body of the /new paths and the
// answers for unknown hosts and paths. Each case has a handler of its own, so that the
// rate limit stays out of the way.
func TestEndpoints(t *testing.T) {
	const (
		jsonType = "application/json"
		redirect = "dcaccount:https://chat.example/new"
	)
	for _, tc := range []struct {
		name       string
		method     string
		host       string
		path       string
		wantStatus int
		wantHeader map[string]string
		wantBody   string // exact, unless check is set
		check      func(t *testing.T, body []byte)
	}{
		{name: "POST /new", method: "POST", host: "chat.example", path: "/new", wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": jsonType, "Cache-Control": "no-store"},
			check:      credentialsBody("chat.example", 12, false)},
		{name: "POST legacy path", method: "POST", host: "chat.example", path: "/cgi-bin/newemail.py", wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": jsonType},
			check:      credentialsBody("chat.example", 12, false)},
		{name: "POST /new self-signed", method: "POST", host: "_self.example", path: "/new", wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": jsonType},
			check:      credentialsBody("_self.example", 15, true)},
		{name: "POST legacy self-signed", method: "POST", host: "_self.example", path: "/cgi-bin/newemail.py", wantStatus: 200,
			check: credentialsBody("_self.example", 15, true)},
		{name: "host with port and capitals", method: "POST", host: "Chat.EXAMPLE.:8443", path: "/new", wantStatus: 200,
			check: credentialsBody("chat.example", 12, false)},
		{name: "GET /new", method: "GET", host: "chat.example", path: "/new", wantStatus: 301,
			wantHeader: map[string]string{"Location": redirect}, wantBody: ""},
		{name: "HEAD /new", method: "HEAD", host: "chat.example", path: "/new", wantStatus: 301,
			wantHeader: map[string]string{"Location": redirect}, wantBody: ""},
		{name: "GET legacy path", method: "GET", host: "chat.example", path: "/cgi-bin/newemail.py", wantStatus: 301,
			wantHeader: map[string]string{"Location": redirect}, wantBody: ""},
		{name: "GET /new names the domain, not the Host", method: "GET", host: "CHAT.example:443", path: "/new", wantStatus: 301,
			wantHeader: map[string]string{"Location": redirect}},
		{name: "GET /new with closed registration still opens the app", method: "GET", host: "closed.example", path: "/new", wantStatus: 301,
			wantHeader: map[string]string{"Location": "dcaccount:https://closed.example/new"}},
		{name: "closed registration", method: "POST", host: "closed.example", path: "/new", wantStatus: 403,
			wantHeader: map[string]string{"Content-Type": jsonType}, wantBody: `{"reason":"registration is closed"}`},
		{name: "closed registration, legacy path", method: "POST", host: "closed.example", path: "/cgi-bin/newemail.py", wantStatus: 403,
			wantHeader: map[string]string{"Content-Type": jsonType}, wantBody: `{"reason":"registration is closed"}`},
		{name: "PUT /new", method: "PUT", host: "chat.example", path: "/new", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD, POST", "Content-Type": jsonType}, wantBody: `{"reason":"method not allowed"}`},
		{name: "DELETE legacy path", method: "DELETE", host: "chat.example", path: "/cgi-bin/newemail.py", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD, POST"}, wantBody: `{"reason":"method not allowed"}`},
		{name: "POST page", method: "POST", host: "chat.example", path: "/", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD"}, wantBody: "method not allowed\n"},
		{name: "POST image", method: "POST", host: "chat.example", path: "/new.png", wantStatus: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD"}, wantBody: "method not allowed\n"},
		{name: "unknown host", method: "POST", host: "mail.example", path: "/new", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "unknown host page", method: "GET", host: "mail.example", path: "/", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "no host", method: "POST", host: "", path: "/new", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "unknown path", method: "GET", host: "chat.example", path: "/new/", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "unknown path 2", method: "POST", host: "chat.example", path: "/newemail.py", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "closed registration has no image", method: "GET", host: "closed.example", path: "/new.png", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "store failure", method: "POST", host: "broken.example", path: "/new", wantStatus: 500,
			wantHeader: map[string]string{"Content-Type": jsonType}, wantBody: `{"reason":"internal server error"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			r := httptest.NewRequest(tc.method, "/", nil)
			r.URL.Path = tc.path
			r.Host = tc.host
			r.RemoteAddr = "198.51.100.7:4242"
			w := httptest.NewRecorder()
			ts.h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %q", w.Code, tc.wantStatus, w.Body)
			}
			for k, v := range tc.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tc.check != nil {
				tc.check(t, w.Body.Bytes())
			} else if got := w.Body.String(); got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
		})
	}
}

// credentialsBody checks a 200 body of POST /new: exactly the fields of §4, an address
// on domain, a password of wantLen characters from the alphabet, and with selfSigned a
// dclogin_url that parses back to both.
func credentialsBody(domain string, wantLen int, selfSigned bool) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		var fields map[string]string
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		want := []string{"email", "password"}
		if selfSigned {
			want = append(want, "dclogin_url")
		}
		if len(fields) != len(want) {
			t.Fatalf("fields %q, want %q", fields, want)
		}
		for _, k := range want {
			if _, ok := fields[k]; !ok {
				t.Fatalf("no %q in %s", k, body)
			}
		}
		if !regexp.MustCompile(`^[a-z0-9]{9}@` + regexp.QuoteMeta(domain) + `$`).MatchString(fields["email"]) {
			t.Errorf("email %q", fields["email"])
		}
		pw := fields["password"]
		if len(pw) != wantLen || strings.Trim(pw, PasswordAlphabet) != "" {
			t.Errorf("password %q: want %d characters from the alphabet", pw, wantLen)
		}
		// The fields come in the order of §4, and punctuation is not HTML-escaped.
		if !bytes.HasPrefix(body, []byte(`{"email":"`)) || bytes.Contains(body, []byte(`\u00`)) || bytes.HasSuffix(body, []byte("\n")) {
			t.Errorf("body %s is not written as in §4", body)
		}
		if !selfSigned {
			return
		}
		u, err := url.Parse(fields["dclogin_url"])
		if err != nil {
			t.Fatalf("dclogin_url %q: %v", fields["dclogin_url"], err)
		}
		q, _ := url.ParseQuery(u.RawQuery)
		if u.Scheme != "dclogin" || u.Opaque != fields["email"] || q.Get("p") != pw || q.Get("v") != "1" || q.Get("ic") != "3" {
			t.Errorf("dclogin_url %q does not give back %q and the password", fields["dclogin_url"], fields["email"])
		}
	}
}

func TestDomainLookupGetsBareHost(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, host := range []string{"Chat.Example", "chat.example:443", "chat.example.", "[::1]:8443", "CHAT.EXAMPLE.:80"} {
		ts.do("GET", host, "/new", "192.0.2.1:1")
	}
	want := []string{"chat.example", "chat.example", "chat.example", "::1", "chat.example"}
	if strings.Join(ts.hosts, " ") != strings.Join(want, " ") {
		t.Errorf("Domain saw %q, want %q", ts.hosts, want)
	}
}

func TestNewSkipsTakenNames(t *testing.T) {
	ts := newTestServer(t, Options{})
	seen := map[string]bool{}
	for i := range 5 {
		w := ts.do("POST", "chat.example", "/new", "192.0.2.1:1")
		if w.Code != 200 {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		var c struct{ Email string }
		json.Unmarshal(w.Body.Bytes(), &c)
		if seen[c.Email] {
			t.Fatalf("%s handed out twice", c.Email)
		}
		seen[c.Email] = true
		ts.mu.Lock()
		ts.taken[c.Email] = true
		ts.mu.Unlock()
	}
}

// TestRateLimit drives the clock by hand: five requests pass at once, the sixth gets
// 429, and the bucket refills at two a second. Neighbours in the same /24 or /64 share
// a bucket; other networks and other paths are unaffected.
func TestRateLimit(t *testing.T) {
	const tooMany = `{"reason":"too many requests"}`
	ts := newTestServer(t, Options{})
	post := func(remote string) int { return ts.do("POST", "chat.example", "/new", remote).Code }

	for i := range 5 {
		if code := post("192.0.2.10:1000"); code != 200 {
			t.Fatalf("request %d of the burst: %d", i+1, code)
		}
	}
	w := ts.do("POST", "chat.example", "/new", "192.0.2.10:1000")
	if w.Code != 429 || w.Body.String() != tooMany || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("after the burst: %d %q %q", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
	if code := post("192.0.2.200:5"); code != 429 {
		t.Errorf("same /24: %d, want 429", code)
	}
	if code := ts.do("GET", "chat.example", "/cgi-bin/newemail.py", "192.0.2.10:1000").Code; code != 429 {
		t.Errorf("legacy path GET in the same bucket: %d, want 429", code)
	}
	if code := post("192.0.3.10:1000"); code != 200 {
		t.Errorf("next /24: %d, want 200", code)
	}
	if code := post("[::ffff:192.0.2.10]:1000"); code != 429 {
		t.Errorf("IPv4-mapped IPv6 of the same /24: %d, want 429", code)
	}
	if code := ts.do("GET", "chat.example", "/", "192.0.2.10:1000").Code; code != 200 {
		t.Errorf("the page is not rate limited: %d", code)
	}

	ts.clock.Advance(500 * time.Millisecond) // one token back
	if code := post("192.0.2.10:1000"); code != 200 {
		t.Errorf("after 0.5 s: %d, want 200", code)
	}
	if code := post("192.0.2.10:1000"); code != 429 {
		t.Errorf("second after 0.5 s: %d, want 429", code)
	}
	ts.clock.Advance(time.Hour) // full again, but no more than the burst
	for i := range 5 {
		if code := post("192.0.2.10:1000"); code != 200 {
			t.Fatalf("request %d after recovering: %d", i+1, code)
		}
	}
	if code := post("192.0.2.10:1000"); code != 429 {
		t.Errorf("sixth after recovering: %d, want 429", code)
	}

	// IPv6: a /64 is one client.
	for range 5 {
		post("[2001:db8:1:2::1]:1")
	}
	if code := post("[2001:db8:1:2:ffff::9]:1"); code != 429 {
		t.Errorf("same /64: %d, want 429", code)
	}
	if code := post("[2001:db8:1:3::1]:1"); code != 200 {
		t.Errorf("next /64: %d, want 200", code)
	}
}

func TestRateLimitOptions(t *testing.T) {
	ts := newTestServer(t, Options{Limit: 1, Burst: 1})
	if code := ts.do("POST", "chat.example", "/new", "192.0.2.1:1").Code; code != 200 {
		t.Fatal(code)
	}
	if code := ts.do("POST", "chat.example", "/new", "192.0.2.1:1").Code; code != 429 {
		t.Fatalf("burst 1: second request %d", code)
	}
	ts.clock.Advance(time.Second)
	if code := ts.do("POST", "chat.example", "/new", "192.0.2.1:1").Code; code != 200 {
		t.Fatalf("after 1 s at 1/s: %d", code)
	}
}

// TestRateLimitForgetsOldClients checks the bound on kept buckets: the least recently
// used network is dropped, and so starts afresh.
func TestRateLimitForgetsOldClients(t *testing.T) {
	ts := newTestServer(t, Options{MaxClients: 3})
	exhaust := func(remote string) {
		for range 6 {
			ts.do("POST", "chat.example", "/new", remote)
		}
	}
	exhaust("192.0.2.1:1")
	exhaust("192.0.3.1:1")
	exhaust("192.0.4.1:1")
	if code := ts.do("POST", "chat.example", "/new", "192.0.2.1:1").Code; code != 429 {
		t.Fatalf("still kept: %d, want 429", code) // and now the most recently used
	}
	ts.do("POST", "chat.example", "/new", "192.0.5.1:1") // drops 192.0.3.0/24
	if n := ts.h.clients.len(); n != 3 {
		t.Errorf("%d buckets kept, want 3", n)
	}
	if code := ts.do("POST", "chat.example", "/new", "192.0.3.1:1").Code; code != 200 {
		t.Errorf("dropped network: %d, want 200", code)
	}
	if code := ts.do("POST", "chat.example", "/new", "192.0.2.1:1").Code; code != 429 {
		t.Errorf("recently used network was dropped: %d, want 429", code)
	}
	for i := range 10_000 {
		ts.do("GET", "chat.example", "/new", "10."+strconv.Itoa(i>>8)+"."+strconv.Itoa(i&255)+".1:1")
	}
	if n := ts.h.clients.len(); n != 3 {
		t.Errorf("after many networks: %d buckets kept, want 3", n)
	}
}

func TestClientNetwork(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.77:5000":          "192.0.2.0/24",
		"[::ffff:192.0.2.77]:5000": "192.0.2.0/24",
		"[2001:db8:a:b:c::1]:443":  "2001:db8:a:b::/64",
		"[fe80::1%eth0]:443":       "fe80::/64",
		"192.0.2.77":               "192.0.2.0/24",
		"not an address":           "invalid Prefix",
		"":                         "invalid Prefix",
	} {
		if got := clientNetwork(remote).String(); got != want {
			t.Errorf("clientNetwork(%q) = %s, want %s", remote, got, want)
		}
	}
}

// TestOverLoopback runs the handler behind a real HTTP server on 127.0.0.1, as Delta
// Chat meets it: an empty POST, and a GET whose redirect is not followed.
func TestOverLoopback(t *testing.T) {
	ts := newTestServer(t, Options{})
	srv := httptest.NewServer(ts.h)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, _ := http.NewRequest("POST", srv.URL+"/new", nil)
	req.Host = "chat.example"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	credentialsBody("chat.example", 12, false)(t, body)

	req, _ = http.NewRequest("GET", srv.URL+"/cgi-bin/newemail.py", nil)
	req.Host = "chat.example"
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "dcaccount:https://chat.example/new" {
		t.Fatalf("GET: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
