package imapd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

func (s *session) cmdLogin(ctx context.Context, cmd *wire.Command) error {
	user, pass, err := cmd.Login()
	if err != nil {
		return err
	}
	return s.login(ctx, user, pass)
}

func (s *session) cmdAuthenticate(ctx context.Context, cmd *wire.Command) error {
	mech, ir, hasIR, err := cmd.Authenticate()
	if err != nil {
		return err
	}
	if mech != "PLAIN" {
		return no(wire.CodeCannot, "Unsupported authentication mechanism %s (use PLAIN)", clip(mech))
	}
	if s.loginDisabled() {
		return no(wire.CodePrivacyRequired, "Use STARTTLS before logging in")
	}
	if !hasIR {
		s.wr().Continue("")
		if err := s.flush(); err != nil {
			return errClose
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := s.r.ReadLine(ctx)
		if e, ok := wire.AsError(err); ok {
			e.Tag = cmd.Tag
			return e
		}
		if err != nil {
			return errClose
		}
		ir = line
	}
	if ir == "*" {
		return bad("Authentication cancelled")
	}
	if ir == "=" {
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		return bad("Invalid base64 in authentication response")
	}
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 3 {
		return bad("Malformed PLAIN response (want authzid NUL user NUL password)")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && store.Normalize(authz) != store.Normalize(user) {
		return no(wire.CodeAuthorizationFailed, "Cannot log in as another user")
	}
	return s.login(ctx, user, pass)
}

// login checks a user name and password against every limit, then enters the
// authenticated state. The tagged OK carries the capabilities, which Delta Chat
// reads there instead of asking.
func (s *session) login(ctx context.Context, user, pass string) error {
	srv := s.srv
	if s.loginDisabled() {
		return no(wire.CodePrivacyRequired, "Use STARTTLS before logging in")
	}
	lim := srv.opts.AuthLimiter
	if lim != nil && !lim.Allow(s.ip) {
		s.loginMetric(false)
		s.logAuthFailure(user, "address locked out")
		return no(wire.CodeUnavailable, "Too many failed logins from your address; try again later")
	}
	name := store.Normalize(user)
	now := time.Now()
	if srv.fails.count(name, srv.lim.AccountFailureWindow, now) >= srv.lim.AccountFailures {
		if lim != nil {
			sleep(ctx, lim.Fail(s.ip))
		}
		s.loginMetric(false)
		s.logAuthFailure(user, "account locked out")
		return no(wire.CodeUnavailable, "Too many failed logins for this account; try again later")
	}
	var acc *store.Account
	var err error
	if auth := srv.opts.Authenticate; auth != nil {
		acc, err = auth(ctx, s.ip, user, pass)
	} else {
		acc, err = srv.st.Authenticate(ctx, user, pass)
	}
	if errors.Is(err, store.ErrAuthFailed) || errors.Is(err, store.ErrNotFound) {
		var d time.Duration
		if lim != nil {
			d = lim.Fail(s.ip)
		}
		if n := srv.fails.fail(name, srv.lim.AccountFailureWindow, now); n > srv.lim.AccountFailures/2 {
			d += time.Second
		}
		sleep(ctx, d)
		s.loginMetric(false)
		s.logAuthFailure(user, "bad credentials")
		return no(wire.CodeAuthenticationFailed, "Authentication failed.")
	}
	if err != nil {
		s.log.Error("imap: login", "user", clip(name), "err", err)
		return no(wire.CodeUnavailable, "Temporary failure; try again")
	}
	if lim != nil {
		lim.Succeed(s.ip)
	}
	if !srv.claimAccount(s, acc.ID) {
		if s.stopping.Load() {
			return no(wire.CodeUnavailable, "Too many connections to this server; try again later")
		}
		return no(wire.CodeLimit, "Too many connections for this account (limit %d)", srv.lim.MaxConnsPerAccount)
	}
	s.loginMetric(true)
	s.acc = acc
	s.state = stateAuth
	s.sub = srv.st.Subscribe(acc.ID)
	s.r.Limits.MaxLiteral = srv.lim.MaxLiteral
	s.r.Limits.MaxAppend = srv.lim.MaxMessageSize
	s.caps = s.capabilities()
	s.log.Info("imap: login", "protocol", "imap", "account", acc.Address, "tls", s.tls)
	s.log = s.log.With("account", acc.Address)
	return okCode(wire.CodeCapability(s.caps...), "Logged in")
}

// logAuthFailure writes the line every failed login is logged with, the same for SMTP,
// IMAP and the web (contrib/fail2ban/coibox.conf reads it): the message
// "authentication failed", then protocol, remote (the client's IP address alone) and
// account, in that order and before anything else of the line, so that a filter can
// anchor on them and no client-chosen text precedes the address. Never the password.
func (s *session) logAuthFailure(user, reason string) {
	s.srv.log.Warn("authentication failed", "protocol", "imap", "remote", s.ip.String(), "account", clip(user),
		"reason", reason)
}

func (s *session) loginMetric(ok bool) {
	if m := s.srv.opts.Metrics.Login; m != nil {
		m(ok)
	}
}

// isTimeout reports a read deadline that passed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// normalizeEntry lower-cases a METADATA entry name and checks its form (RFC 5464 §3.2).
func normalizeEntry(name string) (string, bool) {
	n := strings.ToLower(name)
	if !(n == "/private" || n == "/shared" || strings.HasPrefix(n, "/private/") || strings.HasPrefix(n, "/shared/")) {
		return n, false
	}
	if strings.HasSuffix(n, "/") || strings.Contains(n, "//") || strings.ContainsAny(n, "*%\x00\r\n") {
		return n, false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x20 || n[i] == 0x7f {
			return n, false
		}
	}
	return n, true
}
