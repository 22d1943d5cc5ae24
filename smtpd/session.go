package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/internal/ascii"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/store"
)

var (
	errStartTLSFirst = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	errAuthRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errAuthInvalid   = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthTemp      = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	errLockedOut     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts, try later"}
	errNoAuthHere    = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH is not available on this port, use submission"}
	errTooBig        = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}
	errLocal         = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
	errShutdown      = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down"}
	errNoTransaction = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No transaction in progress"}
)

// NewSession starts a session at EHLO (go-smtp's Backend). After STARTTLS the client
// says EHLO again and gets a fresh session, as RFC 3207 requires.
func (s *Server) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := connOf(sc.Conn())
	if c == nil {
		return nil, errors.New("unexpected connection type")
	}
	// EHLO arrives after any TLS handshake, so replies can now go through the layer.
	c.setOuter(sc.Conn())
	// A client that said EHLO is a client: its slot is no longer given to newcomers.
	s.slots.settle(c.slot)
	ss := &session{srv: s, c: c, sc: sc, log: c.log}
	if st, ok := sc.TLSConnectionState(); ok {
		ss.tls = &st
	}
	return ss, nil
}

func connOf(nc net.Conn) *conn {
	switch v := nc.(type) {
	case *conn:
		return v
	case *tls.Conn:
		c, _ := v.NetConn().(*conn)
		return c
	}
	return nil
}

// session is one client between two EHLOs. go-smtp calls it from the connection's
// goroutine, except Data after BDAT, which runs in a goroutine of its own while the
// connection's reads chunks; mu guards what both touch.
type session struct {
	srv *Server
	c   *conn
	sc  *smtp.Conn
	log *slog.Logger
	tls *tls.ConnectionState

	mu       sync.Mutex
	account  *store.Account    // logged in; nil if not
	env      *deliver.Envelope // the transaction since MAIL; nil if none
	sizeHint int64             // MAIL's SIZE=, to size the read buffer
}

func (s *session) kind() deliver.Kind {
	if s.srv.opts.Kind == MX {
		return deliver.MX
	}
	return deliver.Submission
}

// AuthMechanisms lists SASL mechanisms for EHLO: on submission, once TLS is on.
func (s *session) AuthMechanisms() []string {
	if s.srv.opts.Kind == MX || s.tls == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange.
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case s.srv.opts.Kind == MX:
		return nil, errNoAuthHere
	case s.tls == nil:
		return nil, errStartTLSFirst
	case !s.srv.limiter.Allow(s.c.ip):
		s.c.closeAfterReply()
		return nil, errLockedOut
	}
	switch mech {
	case sasl.Plain:
		return &plainServer{auth: s.authenticate}, nil
	case sasl.Login:
		return &loginServer{auth: s.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate checks a login. Failures are slowed down by the limiter's delay, and an
// address that keeps failing is locked out (by the limiter, for every listener).
func (s *session) authenticate(identity, username, password string) error {
	if identity != "" && identity != username {
		return errAuthInvalid // acting for another user is not supported
	}
	var acc *store.Account
	var err error
	if auth := s.srv.opts.Authenticate; auth != nil {
		acc, err = auth(s.srv.ctx, s.c.ip, username, password)
	} else {
		acc, err = s.srv.opts.Store.Authenticate(s.srv.ctx, username, password)
	}
	if errors.Is(err, store.ErrAuthFailed) {
		s.srv.m.AuthFailed(s.srv.name)
		delay := s.srv.limiter.Fail(s.c.ip)
		s.srv.logAuthFailure(s.c, username, delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.srv.ctx.Done():
			t.Stop()
		}
		return errAuthInvalid
	}
	if err != nil {
		s.log.Error("login", "user", clip(username), "err", err)
		return errAuthTemp
	}
	s.srv.limiter.Succeed(s.c.ip)
	s.mu.Lock()
	s.account = acc
	s.mu.Unlock()
	s.log = s.log.With("login", acc.Address)
	s.log.Info("login")
	return nil
}

// logAuthFailure writes the line every failed login is logged with, the same for SMTP,
// IMAP and the web (contrib/fail2ban/coibox.conf reads it): the message
// "authentication failed", then protocol, remote (the client's IP address alone) and
// account, in that order and before anything else of the line, so that a filter can
// anchor on them and no client-chosen text precedes the address. Never the password.
func (srv *Server) logAuthFailure(c *conn, account string, delay time.Duration) {
	srv.log.Warn("authentication failed", "protocol", "smtp", "remote", c.ip.String(), "account", clip(account),
		"session", c.id, "delay", delay.String())
}

// Mail starts a transaction.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv.opts.Kind != MX {
		if s.tls == nil {
			return errStartTLSFirst
		}
		if s.account == nil {
			s.srv.m.Rejected(s.srv.name, metrics.ReasonAuthRequired)
			return errAuthRequired
		}
	}
	if p := pathProblem(from); p != "" {
		s.log.Info("sender refused", "from", clip(from), "reason", p)
		return senderSyntax(p)
	}
	if !opts.UTF8 && !ascii.Is(from) {
		s.log.Info("sender refused", "from", clip(from), "reason", "non-ASCII without SMTPUTF8")
		return errNeedSMTPUTF8
	}
	n := s.c.messages.Add(1)
	env := &deliver.Envelope{
		Kind:       s.kind(),
		Listener:   s.srv.name,
		ID:         s.c.id + "." + strconv.FormatInt(n, 10),
		RemoteIP:   s.c.ip,
		HELO:       s.sc.Hostname(),
		TLS:        s.tls,
		Sender:     from,
		SMTPUTF8:   opts.UTF8,
		RequireTLS: opts.RequireTLS,
		EightBit:   opts.Body == smtp.Body8BitMIME,
	}
	if s.account != nil {
		env.AccountID, env.Login = s.account.ID, s.account.Address
	}
	s.env, s.sizeHint = env, opts.Size
	s.c.setInTx(true)
	return nil
}

// Rcpt adds a recipient through the pipeline's rules.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.env == nil {
		return errNoTransaction
	}
	if p := pathProblem(to); p != "" {
		s.log.Info("recipient refused", "id", s.env.ID, "rcpt", clip(to), "reason", p)
		return recipientSyntax(p)
	}
	if !s.env.SMTPUTF8 && !ascii.Is(to) {
		s.log.Info("recipient refused", "id", s.env.ID, "rcpt", clip(to), "reason", "non-ASCII without SMTPUTF8")
		return errNeedSMTPUTF8
	}
	err := s.srv.opts.Pipeline.AddRecipient(s.srv.ctx, s.env, to)
	if err != nil {
		s.log.Info("recipient refused", "id", s.env.ID, "from", s.env.Sender, "rcpt", to, "reply", replyText(err))
	}
	return s.smtpError(err)
}

// Data receives the message and delivers it.
func (s *session) Data(r io.Reader) error {
	if _, bdat := r.(*io.PipeReader); !bdat {
		// DATA is read in the connection's goroutine under the command deadline; give
		// the whole transfer its own. (BDAT chunks are read as commands, each with
		// the command deadline, while this runs in another goroutine.)
		_ = s.c.Conn.SetReadDeadline(time.Now().Add(s.srv.opts.DataTimeout))
	}
	s.mu.Lock()
	env, hint := s.env, s.sizeHint
	s.mu.Unlock()
	if env == nil {
		return errNoTransaction
	}
	start := time.Now()
	body, err := readBody(r, s.srv.opts.MaxMessageBytes, hint)
	if err != nil {
		if errors.Is(err, errBodyTooBig) || errors.Is(err, smtp.ErrDataTooLarge) {
			s.srv.m.Rejected(s.srv.name, metrics.ReasonTooBig)
			s.log.Info("message refused", "id", env.ID, "from", env.Sender, "reply", errTooBig.Error())
			return errTooBig
		}
		s.log.Info("message transfer failed", "id", env.ID, "err", err)
		return err
	}
	msg := &deliver.Message{Envelope: *env, Body: body}
	res, err := s.srv.opts.Pipeline.Deliver(s.srv.ctx, msg)
	if err != nil {
		s.log.Info("message refused", "id", env.ID, "from", env.Sender, "rcpts", len(env.Recipients), "size", len(body), "reply", replyText(err))
		return s.smtpError(err)
	}
	s.log.Info("message accepted", "id", res.ID, "from", env.Sender, "rcpts", len(env.Recipients), "size", len(body),
		"local", res.Local, "queued", res.Queued, "failed", len(res.Failed), "duration", time.Since(start).Round(time.Microsecond).String())
	// A 250 "error" is how go-smtp lets a backend choose the success text.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + res.ID}
}

// Reset ends the transaction (RSET, after DATA, on a new EHLO).
func (s *session) Reset() {
	s.mu.Lock()
	s.env = nil
	s.mu.Unlock()
	s.c.setInTx(false)
}

// Logout ends the session (the connection closes, or STARTTLS begins).
func (s *session) Logout() error {
	s.Reset()
	// Until the client's next EHLO, a handshake may be under way: nothing may be
	// written below it.
	s.c.setOuter(nil)
	return nil
}

// smtpError turns a pipeline error into the reply for the client. Internal failures
// are logged and become a temporary error, never a leak of their text.
func (s *session) smtpError(err error) error {
	if err == nil {
		return nil
	}
	if r, ok := deliver.AsReply(err); ok {
		return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Message}
	}
	if s.srv.hard.Load() {
		return errShutdown
	}
	s.log.Error("delivery", "err", err)
	return errLocal
}

func replyText(err error) string {
	if r, ok := deliver.AsReply(err); ok {
		return r.Error()
	}
	return errLocal.Error() + ": " + err.Error()
}

var errBodyTooBig = errors.New("message too big")

// readBody reads a message of at most max bytes. Memory grows with what arrives, and
// never past max+1 bytes: the client's word about the size (hint) sizes the first
// buffer, but is not trusted.
func readBody(r io.Reader, max, hint int64) ([]byte, error) {
	size := int64(16 << 10)
	if hint > 0 && hint < size {
		size = hint + 1 // +1: room to see EOF without growing
	}
	if size > max+1 {
		size = max + 1
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > max {
				return nil, errBodyTooBig
			}
			next := 2 * int64(cap(buf))
			if next > max+1 {
				next = max + 1
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if int64(len(buf)) > max {
				return nil, errBodyTooBig
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// clip bounds client-supplied text in logs.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
