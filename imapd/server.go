package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

// Limits bound what one client may cost. Zero fields take DefaultLimits' values.
type Limits struct {
	MaxLine        int   // bytes in a command line, literals excluded
	MaxLiteral     int64 // bytes of literals in one command other than APPEND
	MaxMessageSize int64 // APPEND limit (APPENDLIMIT), same as the SMTP message size
	MaxDepth       int   // nesting of lists and search keys
	MaxArgs        int   // tokens in one command

	// MaxConns bounds the connections served at once, over every listener. When
	// they are all taken, a new connection replaces the oldest one that has not
	// logged in yet; if every one has, the newcomer is told BYE.
	MaxConns           int
	MaxConnsPerIP      int // concurrent connections from one client (see the prefixes)
	MaxConnsPerAccount int // concurrent logged-in connections of one account
	// IPv4Prefix and IPv6Prefix make the addresses of one prefix count as one client
	// for MaxConnsPerIP.
	IPv4Prefix, IPv6Prefix int

	// TLSHandshakeTimeout bounds a TLS handshake, implicit (port 993) or after
	// STARTTLS, so a socket that never sends its ClientHello is closed soon.
	TLSHandshakeTimeout time.Duration

	// IdleTimeout ends a connection that sends nothing for that long, before and after
	// login (RFC 9051 §5.4: at least 30 minutes); it also bounds one IDLE.
	IdleTimeout time.Duration
	// KeepAlive is how often an IDLE connection hears "* OK Still here", which keeps
	// NAT mappings open.
	KeepAlive time.Duration
	// WriteTimeout bounds each write to a client that stopped reading.
	WriteTimeout time.Duration

	// SummaryCache bounds the memory that keeps message summaries of recently used
	// mailboxes (FETCH ENVELOPE and SEARCH over large mailboxes read no rows).
	SummaryCache int64

	MaxMetadataValue   int64 // bytes of one METADATA value
	MaxMetadataEntries int   // METADATA entries one account may hold

	// AccountFailures failed logins on one account within AccountFailureWindow lock
	// that account's password logins until the window has passed; each failure
	// beyond half of that also slows the answer by a second. A success does not reset
	// the count: Delta Chat logs in often, and each of its logins would otherwise
	// buy a guesser a fresh allowance.
	AccountFailures      int
	AccountFailureWindow time.Duration
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:              64 << 10,
		MaxLiteral:           1 << 20,
		MaxMessageSize:       30 << 20,
		MaxDepth:             32,
		MaxArgs:              1000,
		MaxConns:             20000,
		MaxConnsPerIP:        50,
		MaxConnsPerAccount:   100,
		IPv4Prefix:           32,
		IPv6Prefix:           64,
		TLSHandshakeTimeout:  10 * time.Second,
		IdleTimeout:          30 * time.Minute,
		KeepAlive:            2 * time.Minute,
		WriteTimeout:         5 * time.Minute,
		SummaryCache:         64 << 20,
		MaxMetadataValue:     64 << 10,
		MaxMetadataEntries:   500,
		AccountFailures:      30,
		AccountFailureWindow: 15 * time.Minute,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set64 := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxLine, d.MaxLine)
	set64(&l.MaxLiteral, d.MaxLiteral)
	set64(&l.MaxMessageSize, d.MaxMessageSize)
	set(&l.MaxDepth, d.MaxDepth)
	set(&l.MaxArgs, d.MaxArgs)
	set(&l.MaxConns, d.MaxConns)
	set(&l.MaxConnsPerIP, d.MaxConnsPerIP)
	set(&l.MaxConnsPerAccount, d.MaxConnsPerAccount)
	set(&l.IPv4Prefix, d.IPv4Prefix)
	set(&l.IPv6Prefix, d.IPv6Prefix)
	setD(&l.TLSHandshakeTimeout, d.TLSHandshakeTimeout)
	setD(&l.IdleTimeout, d.IdleTimeout)
	setD(&l.KeepAlive, d.KeepAlive)
	setD(&l.WriteTimeout, d.WriteTimeout)
	set64(&l.SummaryCache, d.SummaryCache)
	set64(&l.MaxMetadataValue, d.MaxMetadataValue)
	set(&l.MaxMetadataEntries, d.MaxMetadataEntries)
	set(&l.AccountFailures, d.AccountFailures)
	setD(&l.AccountFailureWindow, d.AccountFailureWindow)
	return l
}

// AuthLimiter slows down and locks out client addresses that keep failing to log in;
// *authlimit.Limiter, shared with SMTP submission, implements it.
type AuthLimiter interface {
	Allow(ip netip.Addr) bool
	Fail(ip netip.Addr) time.Duration
	Succeed(ip netip.Addr)
}

// Metrics are optional hooks; nil fields are skipped.
type Metrics struct {
	// Connections is called with +1 when a connection starts and -1 when it ends.
	Connections func(delta int)
	// Login reports each login attempt's outcome.
	Login func(ok bool)
	// Command reports each command: its name, its status (OK, NO, BAD) and duration.
	Command func(name, status string, d time.Duration)
}

// MetadataEntry is a METADATA entry handed to or returned by a MetadataHook. A nil
// Value is NIL: deletion on SET, absence on GET.
type MetadataEntry struct {
	Name  string
	Value []byte
}

// MetadataHook lets chat features (COI, XDELTAPUSH) own METADATA entries: every entry
// for which Owns reports true goes to the hook instead of the store.
type MetadataHook interface {
	// Owns reports whether the hook serves entry (lower case) of mailbox ("" for the
	// server entries); depth > 0 GETs ask for descendants too.
	Owns(mailbox, entry string) bool
	// GetMetadata returns the entries it has among names (and their descendants to
	// depth: 0, 1, or -1 for infinity). Missing entries may be left out.
	GetMetadata(ctx context.Context, acc *store.Account, mailbox string, names []string, depth int) ([]MetadataEntry, error)
	// SetMetadata applies entries all-or-nothing. A *CommandError is sent to the
	// client as NO [code] text; other errors as a server failure.
	SetMetadata(ctx context.Context, acc *store.Account, mailbox string, entries []MetadataEntry) error
}

// MailboxHook keeps state tied to folders in step with CREATE, DELETE and RENAME
// (COI's Chats folder and its enabled entry). Names are canonical (INBOX spelled so).
type MailboxHook interface {
	// Deleting runs before a DELETE; an error (a *CommandError) refuses it.
	Deleting(ctx context.Context, acc *store.Account, name string) error
	// Renaming runs before a RENAME; an error refuses it.
	Renaming(ctx context.Context, acc *store.Account, from, to string) error
	// Created runs after a CREATE, or a RENAME, made name.
	Created(ctx context.Context, acc *store.Account, name string) error
}

// SeenHook hears, before the tagged OK, of messages a STORE just gave \Seen (COI's
// seen mode moves chat messages out of INBOX then, coi spec §7.2). It returns the
// UIDs it moved out of the mailbox, which a UID STORE reports as expunged at once.
type SeenHook interface {
	Seen(ctx context.Context, acc *store.Account, mailbox string, mailboxID int64, msgs []store.MsgMeta) ([]uint32, error)
}

// CommandError is a failure a hook wants the client to see: "NO [Code] Text".
type CommandError struct {
	Code string // e.g. "CANNOT"; may be empty
	Text string
}

func (e *CommandError) Error() string { return e.Text }

// Options configure a Server.
type Options struct {
	// Hostname names the server in the greeting.
	Hostname string
	Store    *store.Store
	// TLSConfig enables STARTTLS, or is the implicit TLS configuration. Without it,
	// the listener is plaintext and logins are allowed on it (tests, local use).
	TLSConfig *tls.Config
	// ImplicitTLS serves TLS from the first byte (port 993); otherwise STARTTLS is
	// offered and LOGIN/AUTHENTICATE refused until it ran (port 143).
	ImplicitTLS bool
	Limits      Limits
	// AuthLimiter limits failed logins per client address; nil: no per-address limit.
	AuthLimiter AuthLimiter
	// Authenticate replaces store.Authenticate for logins, e.g. to create chatmail
	// accounts on first login (ip is the client's); it returns store.ErrAuthFailed
	// for a bad login.
	Authenticate func(ctx context.Context, ip netip.Addr, user, pass string) (*store.Account, error)
	Logger       *slog.Logger
	Metrics      Metrics
	// ExtraCapabilities lists capabilities added after login for an account
	// (XCHATMAIL, XDELTAPUSH, COI…).
	ExtraCapabilities func(acc *store.Account) []string
	// MetadataHook intercepts METADATA entries it owns; nil: all go to the store.
	MetadataHook MetadataHook
	// MailboxHook hears of CREATE, DELETE and RENAME; nil: nobody does.
	MailboxHook MailboxHook
	// SeenHook hears of messages a STORE marked \Seen; nil: nobody does.
	SeenHook SeenHook
	// Conns, when set, replaces Limits' MaxConns, MaxConnsPerIP and prefixes with
	// counts shared with other Servers.
	Conns *Conns
	// Compress advertises and allows COMPRESS=DEFLATE (costs ~300 KiB per connection
	// that uses it).
	Compress bool
}

// Server serves IMAP on any number of listeners.
type Server struct {
	opts   Options
	lim    Limits
	log    *slog.Logger
	st     *store.Store
	writer sync.Pool // *wire.Writer, borrowed per burst of output
	cache  *sumCache

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	conns     *Conns
	perAcct   map[int64]map[*session]struct{} // logged-in sessions by account id
	closing   bool
	// refusing bounds the TLS handshakes made only to say BYE on port 993.
	refusing chan struct{}
	done     chan struct{} // closed when closing and no session is left
	fails    accountFailures
}

// New returns a Server; Serve starts it.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	s := &Server{
		opts:      opts,
		lim:       opts.Limits.withDefaults(),
		log:       opts.Logger,
		st:        opts.Store,
		listeners: map[net.Listener]struct{}{},
		sessions:  map[*session]struct{}{},
		perAcct:   map[int64]map[*session]struct{}{},
		done:      make(chan struct{}),
		refusing:  make(chan struct{}, maxRefusalHandshakes),
	}
	s.conns = opts.Conns
	if s.conns == nil {
		s.conns = NewConns(s.lim.MaxConns, s.lim.MaxConnsPerIP, s.lim.IPv4Prefix, s.lim.IPv6Prefix)
	}
	s.fails.init()
	s.cache = newSumCache(s.lim.SummaryCache)
	if s.st != nil {
		s.st.OnRemoved(s.removed)
	}
	s.writer.New = func() any { return wire.NewWriter(nil) }
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("imapd: server closed")

// Serve accepts connections on l until Shutdown or ctx ends. With ImplicitTLS, l
// carries plain TCP and Serve does the TLS handshake.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.opts.ImplicitTLS)
}

// ServeTLS is Serve with implicit TLS (port 993) whatever Options.ImplicitTLS says,
// so that one Server, with one set of connection limits and one summary cache, can
// serve both ports 143 and 993.
func (s *Server) ServeTLS(ctx context.Context, l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imapd: ServeTLS without Options.TLSConfig")
	}
	return s.serve(ctx, l, true)
}

func (s *Server) serve(ctx context.Context, l net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off, keep serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("imap: accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("imap accept: %w", err)
		}
		delay = 0
		go s.serveConn(ctx, c, implicitTLS)
	}
}

// Shutdown stops accepting, tells every session goodbye (after its running command)
// and waits for them until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.interrupt()
	}
	if len(s.sessions) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.conn.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// maxRefusalHandshakes bounds the TLS handshakes under way only to tell clients of
// port 993 that the server is full: beyond it they are just closed, since a flood
// must not cost a handshake per socket.
const maxRefusalHandshakes = 64

// addSession registers a connection, or returns the text of the BYE refusing it
// (see Conns).
func (s *Server) addSession(sess *session) (refusal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return "Server shutting down"
	}
	if refusal := s.conns.acquire(sess); refusal != "" {
		return refusal
	}
	s.sessions[sess] = struct{}{}
	return ""
}

func (s *Server) removeSession(sess *session) {
	s.conns.release(sess)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess]; !ok {
		return
	}
	delete(s.sessions, sess)
	if sess.acc != nil {
		s.releaseAccount(sess)
	}
	if s.closing && len(s.sessions) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
}

// claimAccount counts a login; it fails when the account has too many connections.
func (s *Server) claimAccount(sess *session, id int64) bool {
	// Logged in: no longer a connection that gives way to newcomers.
	if !s.conns.settle(sess) {
		return false // evicted while it was logging in; it is saying goodbye
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.perAcct[id]
	if len(m) >= s.lim.MaxConnsPerAccount {
		return false
	}
	if m == nil {
		m = map[*session]struct{}{}
		s.perAcct[id] = m
	}
	m[sess] = struct{}{}
	return true
}

// releaseAccount is called with s.mu held.
func (s *Server) releaseAccount(sess *session) {
	id := sess.acc.ID
	if m := s.perAcct[id]; m != nil {
		delete(m, sess)
		if len(m) == 0 {
			delete(s.perAcct, id)
		}
	}
}

// removed hears from the store that accounts or mailboxes are gone: their cached
// summaries are freed, and the sessions of a deleted account are told goodbye (a
// session whose selected mailbox was deleted says so itself at its next update).
func (s *Server) removed(r store.Removed) {
	s.cache.drop(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range r.Accounts {
		for sess := range s.perAcct[id] {
			sess.interruptWith("The account was deleted")
		}
	}
}

// accountFailures counts failed logins per account name, bounded in memory.
type accountFailures struct {
	mu sync.Mutex
	m  map[string]*failEntry
}

type failEntry struct {
	n     int
	first time.Time
}

const maxFailEntries = 100000

func (f *accountFailures) init() { f.m = map[string]*failEntry{} }

// count returns the failures recorded for name within window.
func (f *accountFailures) count(name string, window time.Duration, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[name]
	if e == nil {
		return 0
	}
	if now.Sub(e.first) > window {
		delete(f.m, name)
		return 0
	}
	return e.n
}

func (f *accountFailures) fail(name string, window time.Duration, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[name]
	if e == nil || now.Sub(e.first) > window {
		if len(f.m) >= maxFailEntries {
			for k, v := range f.m {
				if now.Sub(v.first) > window || len(f.m) >= maxFailEntries {
					delete(f.m, k)
				}
			}
		}
		e = &failEntry{first: now}
		f.m[name] = e
	}
	e.n++
	return e.n
}
