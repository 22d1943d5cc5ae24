// Package smtpd runs coibox's SMTP listeners on go-smtp: MX (port 25) and submission (587
// with STARTTLS, 465 with implicit TLS), handing every message to the delivery pipeline.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/store"
)

// Kind is the role of a listener.
type Kind uint8

const (
	// MX receives mail for local recipients from other servers (port 25). STARTTLS is
	// offered; AUTH is not.
	MX Kind = iota + 1
	// Submission takes mail from users (port 587): STARTTLS, then AUTH, are required.
	Submission
	// Submissions is submission over implicit TLS (port 465).
	Submissions
)

func (k Kind) String() string {
	switch k {
	case MX:
		return "mx"
	case Submission:
		return "submission"
	case Submissions:
		return "submissions"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	Kind Kind
	// Name labels logs and metrics; default: the Kind's name.
	Name string
	// Hostname is announced in the greeting.
	Hostname string
	// TLSConfig enables STARTTLS; Submission and Submissions require it.
	TLSConfig *tls.Config
	Pipeline  *deliver.Pipeline
	Store     *store.Store // for logins
	// Authenticate replaces Store.Authenticate for logins, e.g. to create chatmail
	// accounts on first login (ip is the client's); it returns store.ErrAuthFailed
	// for a bad login.
	Authenticate func(ctx context.Context, ip netip.Addr, user, pass string) (*store.Account, error)
	// AuthLimiter is shared with the other listeners that check passwords; nil: the
	// server makes its own from AuthFailuresPerIP and AuthFailureWindow. MX ignores it.
	AuthLimiter *authlimit.Limiter

	MaxMessageBytes     int64 // default: the pipeline's
	MaxRecipients       int   // default: the pipeline's
	MaxConnections      int   // at once, default 500
	MaxConnectionsPerIP int   // at once, default 20
	// IPv4Prefix and IPv6Prefix make the addresses of one prefix count as one client
	// for MaxConnectionsPerIP; default 32 and 64.
	IPv4Prefix, IPv6Prefix int
	// Slots, when set, replaces MaxConnections, MaxConnectionsPerIP and the prefixes
	// with counts shared with other listeners.
	Slots       *Slots
	ReadTimeout time.Duration // for each command, default 5m
	DataTimeout time.Duration // for a whole DATA transfer, default 10m
	// TLSHandshakeTimeout bounds a TLS handshake, on 465 from the connection's start
	// and after STARTTLS from the 220; default 10s.
	TLSHandshakeTimeout time.Duration
	AuthFailuresPerIP   int           // default 10
	AuthFailureWindow   time.Duration // default 15m

	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

// Replies the server sends on its own, outside any command.
const (
	replyShutdown      = "421 4.3.2 Service shutting down"
	replyTooMany       = "421 4.7.0 Too many connections, try again later"
	replyTooManyFromIP = "421 4.7.0 Too many connections from your address, try again later"
	replyLockedOut     = "421 4.7.0 Too many failed authentication attempts, try later"
)

// Server is one SMTP listener kind. It may serve several net.Listeners at once.
type Server struct {
	opts    Options
	name    string
	log     *slog.Logger
	m       *metrics.Metrics
	limiter *authlimit.Limiter
	smtp    *smtp.Server
	// ctx is the base of every session's work; cancel cuts running deliveries.
	ctx    context.Context
	cancel context.CancelFunc

	draining atomic.Bool // Shutdown began: no new transactions
	hard     atomic.Bool // the shutdown deadline passed: end everything now

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	slots     *Slots
}

// maxLineLength bounds a line of a command or of a message sent with DATA.
const maxLineLength = 64 << 10

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtp server closed")

// New returns a server for one kind of listener.
func New(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = opts.Kind.String()
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	// The limits default to the pipeline's, which enforces them for every protocol;
	// the server's copies are what it advertises and refuses early.
	if opts.MaxMessageBytes <= 0 && opts.Pipeline != nil {
		opts.MaxMessageBytes = opts.Pipeline.MaxMessageBytes()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 30 << 20
	}
	if opts.MaxRecipients <= 0 && opts.Pipeline != nil {
		opts.MaxRecipients = opts.Pipeline.MaxRecipients()
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 1000
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 500
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = 20
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 5 * time.Minute
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = 10 * time.Minute
	}
	if opts.TLSHandshakeTimeout <= 0 {
		opts.TLSHandshakeTimeout = 10 * time.Second
	}
	if opts.AuthFailuresPerIP <= 0 {
		opts.AuthFailuresPerIP = 10
	}
	if opts.AuthFailureWindow <= 0 {
		opts.AuthFailureWindow = 15 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Slots == nil {
		opts.Slots = NewSlots(opts.MaxConnections, opts.MaxConnectionsPerIP).WithPrefixes(opts.IPv4Prefix, opts.IPv6Prefix)
	}
	s := &Server{
		opts:    opts,
		name:    opts.Name,
		log:     opts.Logger.With("listener", opts.Name),
		m:       opts.Metrics,
		limiter: opts.AuthLimiter,
		conns:   map[*conn]struct{}{},
		slots:   opts.Slots,
	}
	switch {
	case opts.Kind == MX:
		// No logins here, and a lockout earned elsewhere must not stop mail delivery.
		s.limiter = nil
	case s.limiter == nil:
		s.limiter = authlimit.New(opts.AuthFailuresPerIP, opts.AuthFailureWindow)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(s)
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLSConfig
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.ReadTimeout
	// RFC 5322 caps lines at 998 characters, but real mail (generated HTML above all)
	// has longer ones, and refusing it loses mail. The cap still bounds a command line.
	srv.MaxLineLength = maxLineLength
	srv.EnableSMTPUTF8 = true
	srv.EnableREQUIRETLS = true // advertised only over TLS; the queue honours it
	// go-smtp would answer AUTH before STARTTLS with 523 itself; letting it through
	// lets the session answer 530 5.7.0 (RFC 3207), and AUTH is still only advertised
	// once TLS is on (see AuthMechanisms).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = errorLog{s.log}
	s.smtp = srv
	return s
}

// Serve accepts connections on l until Shutdown, or until ctx ends, which closes
// every connection at once. l is a plain TCP listener; for Submissions, Serve adds the
// TLS layer itself (so that the connection limits and the handshake deadline apply
// before and during the handshake).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.opts.Kind != MX && s.opts.TLSConfig == nil {
		return fmt.Errorf("serve %s: a TLS configuration is required", s.name)
	}
	if s.opts.Pipeline == nil || (s.opts.Kind != MX && s.opts.Store == nil) {
		return fmt.Errorf("serve %s: no pipeline or store", s.name)
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, s.closeNow)
	defer stop()
	var gl net.Listener = &listener{Listener: l, srv: s}
	if s.opts.Kind == Submissions {
		tl := newTLSListener(gl.(*listener))
		defer tl.Close()
		gl = tl
	}
	err := s.smtp.Serve(gl)
	if s.draining.Load() {
		return nil
	}
	return fmt.Errorf("serve %s: %w", s.name, err)
}

// Shutdown stops accepting connections, tells idle clients 421 and closes them, and
// waits for running transactions to finish. At ctx's deadline the remaining clients
// get 421 4.3.2 and are cut off, and Shutdown returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.cancel()
			return nil
		}
		select {
		case <-ctx.Done():
			s.stopAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stopAll ends every connection at its next read with 421 4.3.2, and cancels the
// deliveries in flight that have not reached the store yet.
func (s *Server) stopAll() {
	s.hard.Store(true)
	s.draining.Store(true)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.wake()
	}
}

// closeNow is the hard stop when Serve's context ends: no goodbyes.
func (s *Server) closeNow() {
	s.hard.Store(true)
	s.draining.Store(true)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Conn.Close()
	}
}

// listener applies the connection limits before go-smtp greets a client.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.srv.admit(nc); c != nil {
			return c, nil
		}
	}
}

// tlsListener hands go-smtp connections on 465 only once their TLS handshake is
// done. Each handshake runs in its own goroutine under the handshake deadline; left
// to go-smtp it would run under the 5-minute command deadline, and a socket that
// never sends its ClientHello would hold a connection slot that long.
type tlsListener struct {
	inner *listener
	ready chan net.Conn
	done  chan struct{} // closed when inner's Accept failed; err says why
	err   error
	once  sync.Once
}

func newTLSListener(inner *listener) *tlsListener {
	tl := &tlsListener{inner: inner, ready: make(chan net.Conn), done: make(chan struct{})}
	go tl.acceptLoop()
	return tl
}

func (tl *tlsListener) acceptLoop() {
	srv := tl.inner.srv
	for {
		nc, err := tl.inner.Accept()
		if err != nil {
			tl.once.Do(func() { tl.err = err; close(tl.done) })
			return
		}
		c := nc.(*conn)
		go func() {
			tc := tls.Server(c, srv.opts.TLSConfig)
			if !c.handshake(tc) {
				tc.Close()
				return
			}
			select {
			case tl.ready <- tc:
			case <-tl.done:
				tc.Close()
			}
		}()
	}
}

func (tl *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-tl.ready:
		return c, nil
	case <-tl.done:
		return nil, tl.err
	}
}

func (tl *tlsListener) Close() error {
	err := tl.inner.Close()
	tl.once.Do(func() { tl.err = net.ErrClosed; close(tl.done) })
	return err
}

func (tl *tlsListener) Addr() net.Addr { return tl.inner.Addr() }

// admit registers a new connection, or refuses it with a 421 and returns nil.
func (s *Server) admit(nc net.Conn) *conn {
	ip := remoteIP(nc)
	c := &conn{Conn: nc, srv: s, ip: ip, id: deliver.NewID(), start: time.Now()}
	c.log = s.log.With("session", c.id, "remote", ip)
	var refusal, reason string
	s.mu.Lock()
	switch {
	case s.draining.Load():
		refusal, reason = replyShutdown, "shutdown"
	case s.limiter != nil && !s.limiter.Allow(ip):
		refusal, reason = replyLockedOut, "auth_lockout"
	default:
		switch c.slot, reason = s.slots.acquire(ip, c.evict); reason {
		case "limit":
			refusal = replyTooMany
		case "per_ip":
			refusal = replyTooManyFromIP
		}
	}
	if refusal != "" {
		s.mu.Unlock()
		s.m.ConnectionRefused(s.name, reason)
		s.log.Info("connection refused", "remote", ip, "reason", reason)
		// On 465 a plain-text reply would only confuse the client's TLS stack, and a
		// handshake costs more than the refusal is worth: just close.
		if s.opts.Kind != Submissions {
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write([]byte(refusal + "\r\n"))
		}
		nc.Close()
		return nil
	}
	if s.opts.Kind != Submissions {
		c.outer = c
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.m.SessionStarted(s.name)
	c.log.Debug("connection opened")
	return c
}

// forget unregisters a closed connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.slots.release(c.slot)
	s.m.SessionEnded(s.name)
	c.log.Debug("connection closed", "duration", time.Since(c.start).Round(time.Millisecond).String(), "messages", c.messages.Load())
}

func remoteIP(nc net.Conn) netip.Addr {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// errorLog routes go-smtp's own messages into slog: panics as errors, the rest (mostly
// clients that hung up or failed the TLS handshake) at debug level.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.print(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) print(msg string) {
	if strings.Contains(msg, "panic") {
		e.log.Error("smtp server", "detail", msg)
		return
	}
	e.log.Debug("smtp server", "detail", msg)
}
