package webadmin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/store"
)

// adminEnv is the admin UI on a real store, with a clock the test moves and the log
// kept.
type adminEnv struct {
	h         http.Handler
	st        *store.Store
	dataDir   string
	now       time.Time
	passwords int
	mu        sync.Mutex
	log       bytes.Buffer
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	e := &adminEnv{dataDir: t.TempDir(), now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
	st, err := store.Open(t.Context(), e.dataDir, store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	limiter := authlimit.New(10, time.Hour).WithDelay(time.Millisecond, time.Millisecond)
	h, err := NewHandler(Options{
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{e: e}, nil)),
		Health: func(context.Context) error { return nil },
		Admin: &Admin{Store: st, DataDir: e.dataDir, Hostname: "mail.example.org", Limiter: limiter, Now: clock,
			Manage: &Manage{Store: st,
				AddDomain: func(ctx context.Context, name string, chatmail bool) (string, error) {
					if _, err := st.AddDomain(ctx, name, chatmail); err != nil {
						return "", err
					}
					return name + ". 3600 IN MX 10 mail.example.org.", nil
				},
				DNSRecords: func(ctx context.Context, name string) (string, error) {
					if _, err := st.Domain(ctx, name); err != nil {
						return "", err
					}
					return name + ". 3600 IN MX 10 mail.example.org.", nil
				},
				AddAccount:  func(ctx context.Context, addr, pw string) error { _, err := st.AddAccount(ctx, addr, pw); return err },
				NewPassword: func() (string, error) { e.passwords++; return fmt.Sprintf("generated-password-%d", e.passwords), nil },
			},
			Dashboard: func(context.Context) (*Dashboard, error) {
				return &Dashboard{Version: "v-test", Domains: 2, Accounts: 3, Listeners: []Listener{{"smtp", ":25"}},
					Certificates: []Certificate{{Names: []string{"mail.example.org"}, Issuer: "CN=Test CA", NotAfter: clock().Add(90 * 24 * time.Hour)}}}, nil
			}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

type lockedWriter struct{ e *adminEnv }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.log.Write(p)
}

func (e *adminEnv) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

// do sends a request from remote with the session cookie (if any) and form values.
func (e *adminEnv) do(method, path, remote, cookie string, form url.Values, header ...string) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, "https://mail.example.org"+path, body)
	r.RemoteAddr = remote
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func sessionOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("session cookie attributes: %+v", c)
			}
			return c.Value
		}
	}
	t.Fatalf("no session cookie; status %d, headers %v", w.Code, w.Header())
	return ""
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

const remote = "192.0.2.10:4000"

// setUp runs the first-run setup and returns the logged-in session.
func (e *adminEnv) setUp(t *testing.T, password string) string {
	t.Helper()
	token, err := NewSetupToken(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("GET", "/admin/setup?token="+token, remote, "", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `name="token" value="`+token+`"`) {
		t.Fatalf("setup page: %d %s", w.Code, w.Body)
	}
	w := e.do("POST", "/admin/setup", remote, "", url.Values{"token": {token}, "password": {password}, "confirm": {password}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin" {
		t.Fatalf("setup: %d %s", w.Code, w.Body)
	}
	return sessionOf(t, w)
}

func TestAdminSetupAndLogin(t *testing.T) {
	e := newAdminEnv(t)
	// Before setup: no login, and no setup without the token.
	if w := e.do("GET", "/admin", remote, "", nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login" {
		t.Errorf("dashboard without session: %d %v", w.Code, w.Header())
	}
	if w := e.do("GET", "/admin/login", remote, "", nil); !strings.Contains(w.Body.String(), "Not set up yet") {
		t.Errorf("login before setup: %s", w.Body)
	}
	if w := e.do("GET", "/admin/setup?token=guess", remote, "", nil); w.Code != http.StatusForbidden {
		t.Errorf("setup with no token made: %d", w.Code)
	}
	token, _ := NewSetupToken(e.dataDir)
	for _, tc := range []struct {
		name       string
		form       url.Values
		code       int
		wantInBody string
	}{
		{"wrong token", url.Values{"token": {"x" + token}, "password": {"long enough pw"}, "confirm": {"long enough pw"}}, 403, "not valid"},
		{"short password", url.Values{"token": {token}, "password": {"short"}, "confirm": {"short"}}, 400, "at least 12 characters"},
		{"passwords differ", url.Values{"token": {token}, "password": {"long enough pw"}, "confirm": {"long enough pw2"}}, 400, "differ"},
	} {
		if w := e.do("POST", "/admin/setup", remote, "", tc.form); w.Code != tc.code || !strings.Contains(w.Body.String(), tc.wantInBody) {
			t.Errorf("setup, %s: %d %s", tc.name, w.Code, w.Body)
		}
	}
	if w := e.do("POST", "/admin/setup", remote, "", url.Values{"token": {token}, "password": {"long enough pw"}, "confirm": {"long enough pw"}},
		"Sec-Fetch-Site", "cross-site"); w.Code != http.StatusForbidden {
		t.Errorf("cross-site setup: %d", w.Code)
	}

	w := e.do("POST", "/admin/setup", remote, "", url.Values{"token": {token}, "password": {"correct horse battery"}, "confirm": {"correct horse battery"}})
	sess := sessionOf(t, w)
	if _, err := os.Stat(filepath.Join(e.dataDir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("the setup token is still there: %v", err)
	}
	// The token works once.
	if w := e.do("GET", "/admin/setup?token="+token, remote, "", nil); w.Code != http.StatusGone {
		t.Errorf("setup page after setup: %d", w.Code)
	}
	if w := e.do("POST", "/admin/setup", remote, "", url.Values{"token": {token}, "password": {"another long one"}, "confirm": {"another long one"}}); w.Code != http.StatusGone {
		t.Errorf("second setup: %d", w.Code)
	}

	// The dashboard, with the security headers.
	w = e.do("GET", "/admin", remote, sess, nil)
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "v-test") || !strings.Contains(body, "CN=Test CA") || !strings.Contains(body, "setup: admin password set") {
		t.Fatalf("dashboard: %d %s", w.Code, body)
	}
	for k, v := range map[string]string{"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, " style=") || strings.Contains(body, "http://") && !strings.Contains(body, "xmlns") {
		t.Errorf("the page has inline script or style, or loads from elsewhere")
	}
	csrf := csrfField.FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("no CSRF token in the dashboard")
	}

	// Logout needs the CSRF token.
	if w := e.do("POST", "/admin/logout", remote, sess, url.Values{}); w.Code != http.StatusForbidden {
		t.Errorf("logout without CSRF token: %d", w.Code)
	}
	if w := e.do("POST", "/admin/logout", remote, sess, url.Values{"csrf": {"forged"}}); w.Code != http.StatusForbidden {
		t.Errorf("logout with a forged CSRF token: %d", w.Code)
	}
	if w := e.do("POST", "/admin/logout", remote, sess, url.Values{"csrf": {csrf[1]}}); w.Code != http.StatusSeeOther {
		t.Errorf("logout: %d", w.Code)
	}
	if w := e.do("GET", "/admin", remote, sess, nil); w.Code != http.StatusSeeOther {
		t.Errorf("dashboard after logout: %d", w.Code)
	}

	// Login; wrong passwords are logged for fail2ban.
	if w := e.do("POST", "/admin/login", remote, "", url.Values{"password": {"wrong"}}); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong password") {
		t.Errorf("wrong password: %d", w.Code)
	}
	if !strings.Contains(e.logText(), `level=WARN msg="authentication failed" protocol=web remote=192.0.2.10 account=admin`) {
		t.Errorf("no failed-login line:\n%s", e.logText())
	}
	w = e.do("POST", "/admin/login", remote, "", url.Values{"password": {"correct horse battery"}})
	sess = sessionOf(t, w)
	if w := e.do("GET", "/admin", remote, sess, nil); w.Code != 200 {
		t.Errorf("dashboard after login: %d", w.Code)
	}
	if w := e.do("POST", "/admin/login", remote, "", url.Values{"password": {"correct horse battery"}}, "Origin", "https://evil.example"); w.Code != http.StatusForbidden {
		t.Errorf("login from another origin: %d", w.Code)
	}
}

func (e *adminEnv) logText() string { e.mu.Lock(); defer e.mu.Unlock(); return e.log.String() }

func TestAdminSessionExpiry(t *testing.T) {
	e := newAdminEnv(t)
	sess := e.setUp(t, "correct horse battery")
	// Used every 20 minutes, it lives until SessionMax.
	for e.now.Add(20*time.Minute).Sub(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)) < SessionMax {
		e.advance(20 * time.Minute)
		if w := e.do("GET", "/admin", remote, sess, nil); w.Code != 200 {
			t.Fatalf("session at %v: %d", e.now, w.Code)
		}
	}
	e.advance(21 * time.Minute)
	if w := e.do("GET", "/admin", remote, sess, nil); w.Code != http.StatusSeeOther {
		t.Errorf("session past SessionMax: %d", w.Code)
	}
	// Idle: refused after SessionIdle without a request.
	w := e.do("POST", "/admin/login", remote, "", url.Values{"password": {"correct horse battery"}})
	sess = sessionOf(t, w)
	e.advance(SessionIdle + time.Second)
	if w := e.do("GET", "/admin", remote, sess, nil); w.Code != http.StatusSeeOther {
		t.Errorf("idle session: %d", w.Code)
	}
}

func TestAdminLockout(t *testing.T) {
	e := newAdminEnv(t)
	e.setUp(t, "correct horse battery")
	for i := range 10 {
		if w := e.do("POST", "/admin/login", remote, "", url.Values{"password": {"guess"}}); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i+1, w.Code)
		}
	}
	// Locked: even the right password is refused from this address, not from others.
	if w := e.do("POST", "/admin/login", remote, "", url.Values{"password": {"correct horse battery"}}); w.Code != http.StatusTooManyRequests {
		t.Errorf("right password from a locked address: %d", w.Code)
	}
	if w := e.do("POST", "/admin/login", "198.51.100.7:1", "", url.Values{"password": {"correct horse battery"}}); w.Code != http.StatusSeeOther {
		t.Errorf("another address: %d", w.Code)
	}
	if n := strings.Count(e.logText(), `msg="authentication failed" protocol=web`); n != 10 {
		t.Errorf("%d failed-login lines, want 10", n)
	}
}

func TestAdminStatic(t *testing.T) {
	e := newAdminEnv(t)
	w := e.do("GET", "/admin/static/admin.css", remote, "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || w.Body.Len() == 0 {
		t.Errorf("stylesheet: %d %v", w.Code, w.Header())
	}
}

func TestAdminManage(t *testing.T) {
	e := newAdminEnv(t)
	sess := e.setUp(t, "correct horse battery")
	csrf := csrfField.FindStringSubmatch(e.do("GET", "/admin/domains", remote, sess, nil).Body.String())[1]
	post := func(path string, form url.Values) *httptest.ResponseRecorder {
		t.Helper()
		form.Set("csrf", csrf)
		return e.do("POST", path, remote, sess, form)
	}

	// Every page and action needs the session; every action the CSRF token.
	for _, path := range []string{"/admin/domains", "/admin/accounts", "/admin/domains/dns?name=x", "/admin/accounts/delete?address=x"} {
		if w := e.do("GET", path, remote, "", nil); w.Code != http.StatusSeeOther {
			t.Errorf("GET %s without a session: %d", path, w.Code)
		}
	}
	if w := e.do("POST", "/admin/domains/add", remote, sess, url.Values{"name": {"example.org"}}); w.Code != http.StatusForbidden {
		t.Errorf("add domain without CSRF token: %d", w.Code)
	}

	if w := post("/admin/domains/add", url.Values{"name": {"example.org"}}); w.Code != 200 || !strings.Contains(w.Body.String(), "example.org. 3600 IN MX 10 mail.example.org.") {
		t.Fatalf("add domain: %d %s", w.Code, w.Body)
	}
	if w := post("/admin/domains/add", url.Values{"name": {"example.org"}}); w.Code != 400 {
		t.Errorf("add the domain again: %d", w.Code)
	}
	if w := post("/admin/domains/add", url.Values{"name": {"chat.example"}, "chatmail": {"on"}}); w.Code != 200 {
		t.Errorf("add chatmail domain: %d", w.Code)
	}
	w := e.do("GET", "/admin/domains", remote, sess, nil)
	if body := w.Body.String(); !strings.Contains(body, "<td>example.org</td><td>mail</td>") || !strings.Contains(body, "<td>chat.example</td><td>chatmail</td>") {
		t.Errorf("domains page:\n%s", body)
	}
	if w := e.do("GET", "/admin/domains/dns?name=nowhere.example", remote, sess, nil); w.Code != 404 {
		t.Errorf("DNS of an unknown domain: %d", w.Code)
	}

	// Accounts: add (the password shown once), search, pages.
	w = post("/admin/accounts/add", url.Values{"address": {"alice@example.org"}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "generated-password-1") {
		t.Fatalf("add account: %d %s", w.Code, w.Body)
	}
	if _, err := e.st.Authenticate(t.Context(), "alice@example.org", "generated-password-1"); err != nil {
		t.Errorf("the shown password does not log in: %v", err)
	}
	for i := range 120 {
		if _, err := e.st.AddAccount(t.Context(), fmt.Sprintf("user%03d@example.org", i), "pw-pw-pw-pw"); err != nil {
			t.Fatal(err)
		}
	}
	w = e.do("GET", "/admin/accounts", remote, sess, nil)
	if body := w.Body.String(); !strings.Contains(body, "121 accounts, page 1 of 3") || strings.Count(body, "<tr><td>") != accountsPerPage || !strings.Contains(body, "Next page") {
		t.Errorf("accounts page 1: %s", body)
	}
	w = e.do("GET", "/admin/accounts?page=3", remote, sess, nil)
	if body := w.Body.String(); strings.Count(body, "<tr><td>") != 21 || !strings.Contains(body, "Previous page") {
		t.Errorf("accounts page 3: %d rows", strings.Count(body, "<tr><td>"))
	}
	w = e.do("GET", "/admin/accounts?q=ALICE", remote, sess, nil)
	if body := w.Body.String(); !strings.Contains(body, "1 accounts") || !strings.Contains(body, "<td>alice@example.org</td>") {
		t.Errorf("search: %s", body)
	}
	if w := post("/admin/accounts/add", url.Values{"address": {"bob@elsewhere.example"}}); w.Code != 400 {
		t.Errorf("account of a domain not served: %d", w.Code)
	}

	// New password.
	w = post("/admin/accounts/passwd", url.Values{"address": {"alice@example.org"}})
	shown := regexp.MustCompile(`<pre class="shown">([^<]+)</pre>`).FindStringSubmatch(w.Body.String())
	if w.Code != 200 || shown == nil {
		t.Fatalf("new password: %d %s", w.Code, w.Body)
	}
	if _, err := e.st.Authenticate(t.Context(), "alice@example.org", shown[1]); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
	if _, err := e.st.Authenticate(t.Context(), "alice@example.org", "generated-password-1"); err == nil {
		t.Error("the old password still logs in")
	}

	// Deleting asks first: the GET page only shows a form.
	if w := e.do("GET", "/admin/accounts/delete?address=alice@example.org", remote, sess, nil); w.Code != 200 || !strings.Contains(w.Body.String(), "Delete the account alice@example.org with all its mail?") {
		t.Errorf("confirm page: %d %s", w.Code, w.Body)
	}
	if _, err := e.st.Account(t.Context(), "alice@example.org"); err != nil {
		t.Fatalf("the confirm page deleted the account: %v", err)
	}
	if w := post("/admin/accounts/delete", url.Values{"address": {"alice@example.org"}}); w.Code != http.StatusSeeOther {
		t.Errorf("delete account: %d", w.Code)
	}
	if _, err := e.st.Account(t.Context(), "alice@example.org"); err == nil {
		t.Error("the account is still there")
	}
	// A domain with accounts stays.
	if w := post("/admin/domains/delete", url.Values{"name": {"example.org"}}); w.Code != http.StatusConflict {
		t.Errorf("delete a domain with accounts: %d", w.Code)
	}
	if w := post("/admin/domains/delete", url.Values{"name": {"chat.example"}}); w.Code != http.StatusSeeOther {
		t.Errorf("delete an empty domain: %d", w.Code)
	}
	log := e.do("GET", "/admin", remote, sess, nil).Body.String()
	for _, want := range []string{"domain add: domain example.org", "domain add: chatmail domain chat.example", "account add: alice@example.org",
		"account passwd: alice@example.org", "account delete: alice@example.org", "domain delete: chat.example"} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
}

// fakeQueue is a queue of fixed entries that records what the page asked of it.
type fakeQueue struct {
	entries          []store.QueueEntry
	retried, dropped []int64
}

func (q *fakeQueue) List(context.Context) ([]store.QueueEntry, error) { return q.entries, nil }
func (q *fakeQueue) Retry(_ context.Context, id int64) error {
	if id != 7 {
		return store.ErrNotFound
	}
	q.retried = append(q.retried, id)
	return nil
}
func (q *fakeQueue) Drop(_ context.Context, id int64) error {
	if id != 7 {
		return store.ErrNotFound
	}
	q.dropped = append(q.dropped, id)
	return nil
}

func TestAdminQueue(t *testing.T) {
	e := newAdminEnv(t)
	q := &fakeQueue{entries: []store.QueueEntry{{ID: 7, Sender: "alice@example.org", Created: e.now,
		Rcpts: []store.QueueRcpt{{Rcpt: "bob@remote.example", State: "pending", Attempts: 3, NextAttempt: e.now.Add(time.Hour),
			LastError: "451 4.3.0 <script>try later</script>"}}}}}
	// The env's handler has no queue: make one with it.
	h, err := NewHandler(Options{Logger: slog.New(slog.DiscardHandler), Admin: &Admin{Store: e.st, DataDir: e.dataDir, Now: func() time.Time { return e.now },
		Manage: &Manage{Store: e.st, Queue: q, QueueHeaders: func(context.Context, int64) (*QueueHeaders, error) {
			return &QueueHeaders{From: "Alice <alice@example.org>", Subject: "hello", Size: 2048}, nil
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	sess := e.setUp(t, "correct horse battery")
	e.h = h
	w := e.do("GET", "/admin/queue", remote, sess, nil)
	body := w.Body.String()
	for _, want := range []string{"#7 from alice@example.org", "Subject: hello", "2.0 KiB", "bob@remote.example", "pending",
		"451 4.3.0 &lt;script&gt;try later&lt;/script&gt;", `href="/admin/queue">Queue</a>`} {
		if w.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("queue page lacks %q:\n%s", want, body)
		}
	}
	csrf := csrfField.FindStringSubmatch(body)[1]
	if w := e.do("POST", "/admin/queue/retry", remote, sess, url.Values{"id": {"7"}}); w.Code != http.StatusForbidden {
		t.Errorf("retry without CSRF token: %d", w.Code)
	}
	if w := e.do("POST", "/admin/queue/retry", remote, sess, url.Values{"id": {"7"}, "csrf": {csrf}}); w.Code != http.StatusSeeOther || len(q.retried) != 1 {
		t.Errorf("retry: %d %v", w.Code, q.retried)
	}
	if w := e.do("POST", "/admin/queue/retry", remote, sess, url.Values{"id": {"8"}, "csrf": {csrf}}); w.Code != 400 {
		t.Errorf("retry of an unknown entry: %d", w.Code)
	}
	if w := e.do("GET", "/admin/queue/drop?id=7", remote, sess, nil); !strings.Contains(w.Body.String(), "Drop queue entry #7 without delivering it") || len(q.dropped) != 0 {
		t.Errorf("drop confirmation: %s %v", w.Body, q.dropped)
	}
	if w := e.do("POST", "/admin/queue/drop", remote, sess, url.Values{"id": {"7"}, "csrf": {csrf}}); w.Code != http.StatusSeeOther || len(q.dropped) != 1 {
		t.Errorf("drop: %d %v", w.Code, q.dropped)
	}
	if log := e.do("GET", "/admin", remote, sess, nil).Body.String(); !strings.Contains(log, "queue retry: 7") || !strings.Contains(log, "queue drop: 7") {
		t.Errorf("the audit log lacks the queue actions")
	}
}

func TestAdminAliases(t *testing.T) {
	e := newAdminEnv(t)
	sess := e.setUp(t, "correct horse battery")
	ctx := t.Context()
	if _, err := e.st.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AddAccount(ctx, "alice@example.org", "pw-pw-pw-pw"); err != nil {
		t.Fatal(err)
	}
	w := e.do("GET", "/admin/aliases", remote, sess, nil)
	csrf := csrfField.FindStringSubmatch(w.Body.String())[1]
	post := func(path string, form url.Values) *httptest.ResponseRecorder {
		form.Set("csrf", csrf)
		return e.do("POST", path, remote, sess, form)
	}
	if w := post("/admin/aliases/add", url.Values{"address": {"Team@Example.org"}, "destination": {"alice@example.org"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("add alias: %d %s", w.Code, w.Body)
	}
	if w := post("/admin/aliases/add", url.Values{"address": {"@example.org"}, "destination": {"alice@example.org"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("add catch-all: %d %s", w.Code, w.Body)
	}
	if w := post("/admin/aliases/add", url.Values{"address": {"x@elsewhere.example"}, "destination": {"alice@example.org"}}); w.Code != 400 {
		t.Errorf("alias on a domain not served: %d", w.Code)
	}
	res, err := e.st.Resolve(ctx, "team@example.org")
	if err != nil || len(res.Accounts) != 1 {
		t.Errorf("team@ resolves to %+v %v", res, err)
	}
	body := e.do("GET", "/admin/aliases", remote, sess, nil).Body.String()
	if !strings.Contains(body, "<td>team@example.org</td><td>alice@example.org</td>") || !strings.Contains(body, "any address @example.org (catch-all)") {
		t.Errorf("aliases page:\n%s", body)
	}
	if w := e.do("POST", "/admin/aliases/delete", remote, sess, url.Values{"address": {"team@example.org"}, "destination": {"alice@example.org"}}); w.Code != http.StatusForbidden {
		t.Errorf("delete without CSRF token: %d", w.Code)
	}
	if w := post("/admin/aliases/delete", url.Values{"address": {"team@example.org"}, "destination": {"alice@example.org"}}); w.Code != http.StatusSeeOther {
		t.Errorf("delete alias: %d", w.Code)
	}
	if as, _ := e.st.Aliases(ctx); len(as) != 1 || as[0].Address != "@example.org" {
		t.Errorf("aliases left: %+v", as)
	}
	if log := e.do("GET", "/admin", remote, sess, nil).Body.String(); !strings.Contains(log, "alias add: team@example.org → alice@example.org") ||
		!strings.Contains(log, "alias delete: team@example.org → alice@example.org") {
		t.Errorf("the audit log lacks the alias actions")
	}
}
