package webadmin

import (
	"bytes"
	"context"
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
	h       http.Handler
	st      *store.Store
	dataDir string
	now     time.Time
	mu      sync.Mutex
	log     bytes.Buffer
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
