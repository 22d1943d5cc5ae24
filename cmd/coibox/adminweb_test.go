package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/webadmin"
)

// adminClient talks to the admin UI like a browser that keeps the session cookie
// (set Secure; the test server is plain HTTP on loopback, where browsers send it too).
type adminClient struct {
	t      *testing.T
	base   string
	cookie string
	hc     *http.Client
}

func (c *adminClient) do(method, path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: webadmin.SessionCookie, Value: c.cookie})
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == webadmin.SessionCookie {
			c.cookie = ck.Value
		}
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestAdminWeb: the first-run link from `coibox admin setup-link` sets the password
// once; the dashboard shows the running server; a wrong password is logged as a
// failed login; `coibox admin passwd` ends the session.
func TestAdminWeb(t *testing.T) {
	cfg, _, l := testutil.ServerConfig(t, "")
	c := "--config=" + cfg
	if r := coibox(t, "", "", c, "domain", "add", "example.org"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	srv := startServer(t, cfg)
	r := coibox(t, "", "", c, "admin", "setup-link")
	m := regexp.MustCompile(`^http://` + regexp.QuoteMeta(l.HTTP) + `/admin/setup\?token=([A-Za-z0-9_-]+)\n`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("admin setup-link: %d %q %q", r.code, r.stdout, r.stderr)
	}
	ac := &adminClient{t: t, base: "http://" + l.HTTP, hc: &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if code, body, h := ac.do("GET", "/admin/setup?token="+m[1], nil); code != 200 || !strings.Contains(body, "Set the admin password") ||
		h.Get("Content-Security-Policy") == "" {
		t.Fatalf("setup page: %d %v", code, h)
	}
	pw := "a long admin password"
	if code, _, h := ac.do("POST", "/admin/setup", url.Values{"token": {m[1]}, "password": {pw}, "confirm": {pw}}); code != 303 || h.Get("Location") != "/admin" || ac.cookie == "" {
		t.Fatalf("setup: %d %v", code, h)
	}
	code, body, _ := ac.do("GET", "/admin", nil)
	for _, want := range []string{l.SMTP, l.IMAPS, "coibox self-signed", "Domains, accounts, messages</th><td>1, 0, 0", "setup: admin password set"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q: %d\n%s", want, code, body)
		}
	}
	if r := coibox(t, "", "", c, "admin", "setup-link"); r.code != 1 || !strings.Contains(r.stderr, "the admin password is set already") {
		t.Errorf("second setup-link: %d %q", r.code, r.stderr)
	}

	other := &adminClient{t: t, base: ac.base, hc: ac.hc}
	if code, _, _ := other.do("POST", "/admin/login", url.Values{"password": {"not it"}}); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	srv.waitLog(t, regexp.MustCompile(`level=WARN msg="authentication failed" pkg=webadmin protocol=web remote=127\.0\.0\.1 account=admin`), 5*time.Second)

	if r := coibox(t, "", "another long password\n", c, "admin", "passwd"); r.code != 0 {
		t.Fatalf("admin passwd: %d %s", r.code, r.stderr)
	}
	if code, _, h := ac.do("GET", "/admin", nil); code != 303 || h.Get("Location") != "/admin/login" {
		t.Errorf("the session survived admin passwd: %d", code)
	}
	if code, _, _ := other.do("POST", "/admin/login", url.Values{"password": {"another long password"}}); code != 303 {
		t.Errorf("login with the new password: %d", code)
	}
	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
}
