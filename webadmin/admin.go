package webadmin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/internal/human"
	"github.com/coibox/coibox/store"
)

// The admin UI (/admin): first-run setup with the one-time token, login with the
// admin password, and the dashboard. Server-rendered html/template pages with their
// stylesheet embedded; no script at all, so the Content-Security-Policy allows none.
//
// Safe on the open internet:
//   - the password is checked with argon2id (store.HashPassword), and failures are
//     slowed and then locked out per client address by the authlimit.Limiter the
//     mail listeners share, and logged as the one "authentication failed" line
//     (protocol web) that contrib/fail2ban reads;
//   - the session cookie is random (32 bytes), HttpOnly, Secure, SameSite=Strict and
//     __Host- prefixed; the store keeps only its hash; sessions end after
//     SessionIdle without a request and SessionMax after login, and on logout;
//   - every form carries the session's CSRF token (setup: the setup token), and
//     cross-site requests (Sec-Fetch-Site, Origin) are refused before anything else;
//   - responses forbid framing, sniffing, caching and referrers.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const (
	// SessionCookie is the admin session's cookie: the __Host- prefix makes
	// browsers refuse it unless Secure, for path /, and set by this host only.
	SessionCookie = "__Host-coibox-admin"
	// SessionIdle and SessionMax end a session: after this long without a request,
	// and this long after login whatever happens.
	SessionIdle = 30 * time.Minute
	SessionMax  = 12 * time.Hour
	// MinAdminPassword is the shortest admin password setup accepts.
	MinAdminPassword = 12
	// csp allows this origin's stylesheet and nothing else: no script, no frames,
	// forms posting only here.
	csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// AdminStore is what the admin UI keeps in the store.
type AdminStore interface {
	HasAdmin(ctx context.Context) (bool, error)
	CheckAdminPassword(ctx context.Context, password string) (bool, error)
	SetAdminPassword(ctx context.Context, hash string) error
	CreateWebSession(ctx context.Context, token, csrf string) error
	WebSessionFor(ctx context.Context, token string) (*store.WebSession, error)
	TouchWebSession(ctx context.Context, token string) error
	DeleteWebSession(ctx context.Context, token string) error
	Audit(ctx context.Context, e store.AuditEntry) error
	AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error)
}

// Dashboard is what the dashboard shows; cmd gathers it.
type Dashboard struct {
	Version           string
	Started           time.Time
	Domains, Accounts int64
	Messages          int64
	DatabaseBytes     int64
	DiskFreeBytes     int64
	QueueEntries      int
	QueueOldest       time.Time
	Listeners         []Listener
	Certificates      []Certificate
	Warnings          []string
}

// Listener is one open listener.
type Listener struct{ Name, Addr string }

// Certificate is one certificate's state, as tlsmgr reports it.
type Certificate struct {
	Names     []string
	Issuer    string
	NotAfter  time.Time
	Fallback  bool
	LastError string
}

// Admin configures the admin UI.
type Admin struct {
	Store AdminStore
	// DataDir holds the setup token (SetupTokenFile).
	DataDir string
	// Hostname is shown in the header.
	Hostname string
	// Limiter slows and locks out failing clients; nil allows every attempt.
	Limiter *authlimit.Limiter
	// Dashboard gathers the dashboard's figures; Health is the /healthz check.
	Dashboard func(ctx context.Context) (*Dashboard, error)
	// Manage, if set, adds the domain and account pages (manage.go).
	Manage *Manage
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

type adminUI struct {
	*Admin
	log   *slog.Logger
	pages map[string]*template.Template
}

func (a *Admin) routes(mux *http.ServeMux, health func(context.Context) error, log *slog.Logger) error {
	ui := &adminUI{Admin: a, log: log, pages: map[string]*template.Template{}}
	if ui.Now == nil {
		ui.Now = time.Now
	}
	funcs := template.FuncMap{"join": strings.Join, "bytes": human.Bytes, "hasPrefix": strings.HasPrefix}
	for _, p := range []string{"message", "setup", "login", "dashboard", "domains", "accounts", "confirm", "shown", "queue", "aliases"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("parse admin template %s: %w", p, err)
		}
		ui.pages[p] = t.Lookup(p + ".html")
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return err
	}
	mux.Handle("GET /admin/static/", secure(http.StripPrefix("/admin/static/", http.FileServerFS(static))))
	mux.Handle("GET /admin/setup", secure(http.HandlerFunc(ui.setupPage)))
	mux.Handle("POST /admin/setup", secure(sameOrigin(http.HandlerFunc(ui.setup))))
	mux.Handle("GET /admin/login", secure(http.HandlerFunc(ui.loginPage)))
	mux.Handle("POST /admin/login", secure(sameOrigin(http.HandlerFunc(ui.login))))
	mux.Handle("POST /admin/logout", secure(sameOrigin(ui.session(ui.logout))))
	mux.Handle("GET /admin", secure(ui.session(func(w http.ResponseWriter, r *http.Request, s *session) {
		ui.dashboard(w, r, s, health)
	})))
	mux.Handle("GET /admin/{$}", http.RedirectHandler("/admin", http.StatusMovedPermanently))
	if a.Manage != nil {
		ui.manageRoutes(mux)
	}
	return nil
}

// secure sets the headers every admin response carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" even on this site's own forms.
		hd.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/admin/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin refuses a state-changing request another site made the browser send.
// Browsers name the initiator in Sec-Fetch-Site ("same-origin", or "none" for what
// the user did); older ones only in Origin, which is "null" when they will not say
// (and then the request is refused).
func sameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := true
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			ok = site == "same-origin" || site == "none"
		} else if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			ok = o != "null" && err == nil && strings.EqualFold(u.Host, r.Host)
		}
		if !ok {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type page struct {
	Title, Host, CSRF       string
	Message, Link, LinkText string
	Error                   string
	Token                   string
	MinLength               int
	Info                    *Dashboard
	Healthy                 bool
	HealthError             string
	Audit                   []store.AuditEntry
	// The manage pages'.
	Nav, QueueNav        bool
	Notice, Shown        string
	Domains              []domainRow
	Accounts             []accountRow
	Queue                []queueRow
	Aliases              []store.Alias
	Query, Prev, Next    string
	Page, Pages, Total   int
	Action, Field, Value string
}

func (ui *adminUI) render(w http.ResponseWriter, code int, name string, p page) {
	p.Host = ui.Hostname
	p.Nav = p.CSRF != "" && ui.Manage != nil
	p.QueueNav = p.Nav && ui.Manage.Queue != nil
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := ui.pages[name].Execute(w, p); err != nil {
		ui.log.Warn("admin: render page", "page", name, "err", err)
	}
}

func (ui *adminUI) message(w http.ResponseWriter, code int, title, msg string) {
	ui.render(w, code, "message", page{Title: title, Message: msg, Error: "yes"})
}

func (ui *adminUI) setupPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if done, err := ui.Store.HasAdmin(ctx); err != nil {
		ui.internal(w, err)
		return
	} else if done {
		ui.render(w, http.StatusGone, "message", page{Title: "Already set up", Message: "The admin password is set; the setup link no longer works.",
			Link: "/admin/login", LinkText: "Log in"})
		return
	}
	token := r.URL.Query().Get("token")
	if ok, err := checkSetupToken(ui.DataDir, token); err != nil && !errors.Is(err, errNoSetupToken) {
		ui.internal(w, err)
		return
	} else if !ok {
		ui.message(w, http.StatusForbidden, "Setup link not valid", "Use the link coibox quickstart printed; coibox quickstart run again prints a new one.")
		return
	}
	ui.render(w, http.StatusOK, "setup", page{Title: "First run", Token: token, MinLength: MinAdminPassword})
}

func (ui *adminUI) setup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if done, err := ui.Store.HasAdmin(ctx); err != nil {
		ui.internal(w, err)
		return
	} else if done {
		ui.message(w, http.StatusGone, "Already set up", "The admin password is set; the setup link no longer works.")
		return
	}
	token := r.PostFormValue("token")
	ok, err := checkSetupToken(ui.DataDir, token)
	if err != nil && !errors.Is(err, errNoSetupToken) {
		ui.internal(w, err)
		return
	}
	if !ok {
		ui.message(w, http.StatusForbidden, "Setup link not valid", "Use the link coibox quickstart printed; coibox quickstart run again prints a new one.")
		return
	}
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	var problem string
	switch {
	case len([]rune(pw)) < MinAdminPassword:
		problem = fmt.Sprintf("The password needs at least %d characters.", MinAdminPassword)
	case pw != confirm:
		problem = "The two passwords differ."
	}
	if problem != "" {
		ui.render(w, http.StatusBadRequest, "setup", page{Title: "First run", Token: token, MinLength: MinAdminPassword, Error: problem})
		return
	}
	hash, err := store.HashPassword(pw)
	if err == nil {
		err = ui.Store.SetAdminPassword(ctx, hash)
	}
	if err == nil {
		err = useSetupToken(ui.DataDir)
	}
	if err != nil {
		ui.internal(w, err)
		return
	}
	ui.audit(ctx, r, "setup", "admin password set")
	ui.startSession(w, r)
}

func (ui *adminUI) loginPage(w http.ResponseWriter, r *http.Request) {
	if done, err := ui.Store.HasAdmin(r.Context()); err != nil {
		ui.internal(w, err)
		return
	} else if !done {
		ui.message(w, http.StatusOK, "Not set up yet", "Open the setup link coibox quickstart printed to set the admin password.")
		return
	}
	ui.render(w, http.StatusOK, "login", page{Title: "Log in"})
}

func (ui *adminUI) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ip := clientIP(r)
	if ui.Limiter != nil && ip.IsValid() && !ui.Limiter.Allow(ip) {
		ui.log.Warn("admin: login refused, address locked out", "remote", ip.String())
		ui.message(w, http.StatusTooManyRequests, "Too many failed logins", "Too many failed logins from your address: try again later.")
		return
	}
	ok, err := ui.Store.CheckAdminPassword(ctx, r.PostFormValue("password"))
	if errors.Is(err, store.ErrNoAdmin) {
		ui.message(w, http.StatusForbidden, "Not set up yet", "Open the setup link coibox quickstart printed to set the admin password.")
		return
	}
	if err != nil {
		ui.internal(w, err)
		return
	}
	if !ok {
		var delay time.Duration
		if ui.Limiter != nil && ip.IsValid() {
			delay = ui.Limiter.Fail(ip)
		}
		// The line contrib/fail2ban reads, in the form smtpd and imapd log it.
		ui.log.Warn("authentication failed", "protocol", "web", "remote", ip.String(), "account", "admin", "delay", delay.String())
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		ui.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", Error: "Wrong password."})
		return
	}
	if ui.Limiter != nil && ip.IsValid() {
		ui.Limiter.Succeed(ip)
	}
	ui.audit(ctx, r, "login", "")
	ui.startSession(w, r)
}

// startSession logs the browser in: a new session, its cookie, and on to the
// dashboard.
func (ui *adminUI) startSession(w http.ResponseWriter, r *http.Request) {
	token, csrf := randomToken(), randomToken()
	if err := ui.Store.CreateWebSession(r.Context(), token, csrf); err != nil {
		ui.internal(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", MaxAge: int(SessionMax / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

type session struct{ token, csrf string }

// session admits requests of a live session only (others go to the login page),
// and checks the CSRF token of every POST.
func (ui *adminUI) session(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		c, err := r.Cookie(SessionCookie)
		if err != nil || c.Value == "" {
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		}
		ws, err := ui.Store.WebSessionFor(ctx, c.Value)
		if errors.Is(err, store.ErrNotFound) {
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			ui.internal(w, err)
			return
		}
		now := ui.Now()
		if now.Sub(ws.Seen) > SessionIdle || now.Sub(ws.Created) > SessionMax {
			_ = ui.Store.DeleteWebSession(ctx, c.Value)
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ws.CSRF)) != 1 {
			http.Error(w, "the form is out of date or not from this page: reload it", http.StatusForbidden)
			return
		}
		if err := ui.Store.TouchWebSession(ctx, c.Value); err != nil {
			ui.internal(w, err)
			return
		}
		h(w, r, &session{token: c.Value, csrf: ws.CSRF})
	})
}

func (ui *adminUI) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := ui.Store.DeleteWebSession(r.Context(), s.token); err != nil {
		ui.internal(w, err)
		return
	}
	ui.audit(r.Context(), r, "logout", "")
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

func (ui *adminUI) dashboard(w http.ResponseWriter, r *http.Request, s *session, health func(context.Context) error) {
	ctx := r.Context()
	p := page{Title: "Dashboard", CSRF: s.csrf, Healthy: true}
	if health != nil {
		hctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := health(hctx)
		cancel()
		if err != nil {
			p.Healthy, p.HealthError = false, err.Error()
		}
	}
	if ui.Dashboard != nil {
		info, err := ui.Dashboard(ctx)
		if err != nil {
			ui.internal(w, err)
			return
		}
		p.Info = info
	}
	audit, err := ui.Store.AuditLog(ctx, 20)
	if err != nil {
		ui.internal(w, err)
		return
	}
	p.Audit = audit
	ui.render(w, http.StatusOK, "dashboard", p)
}

func (ui *adminUI) audit(ctx context.Context, r *http.Request, action, detail string) {
	if err := ui.Store.Audit(context.WithoutCancel(ctx), store.AuditEntry{Actor: "admin", Remote: clientIP(r).String(), Action: action, Detail: detail}); err != nil {
		ui.log.Warn("admin: audit log", "err", err)
	}
}

func (ui *adminUI) internal(w http.ResponseWriter, err error) {
	ui.log.Error("admin", "err", err)
	ui.message(w, http.StatusInternalServerError, "Something went wrong", "The server could not answer; its log says why.")
}

// clientIP is the request's client address (a trusted proxy's word for it, after
// TrustProxies).
func clientIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported systems
	return base64.RawURLEncoding.EncodeToString(b)
}
