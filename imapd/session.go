package imapd

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/coibox/coibox/imapd/wire"
	"github.com/coibox/coibox/store"
)

type state int

const (
	stateNotAuth state = iota
	stateAuth
	stateSelected
)

// readBufSize is the per-connection read buffer. Lines longer than it still work
// (wire reads them in pieces); a small buffer keeps idle connections cheap.
const readBufSize = 4 << 10

// preAuthLiteral bounds literals before login: LOGIN's, nothing bigger.
const preAuthLiteral = 8 << 10

// session is one client connection.
type session struct {
	srv  *Server
	raw  net.Conn // the TCP connection, fixed for the session's life
	conn net.Conn // the TCP or TLS connection
	ip   netip.Addr
	// key, quiet and counted belong to srv.conns (guarded by its mutex): ip or its
	// prefix, the place in its list of sessions not logged in, and whether counted.
	key     netip.Addr
	quiet   *list.Element
	counted bool
	start   time.Time
	log     *slog.Logger
	out     io.Writer // where responses go: the connection, or the compressor over it
	r       *wire.Reader
	w       *wire.Writer // borrowed from srv.writer while output is pending, else nil

	tls        bool // the connection is TLS (implicit or after STARTTLS)
	compressed bool
	state      state
	acc        *store.Account
	sub        *store.Subscription
	caps       []string // post-login capabilities, computed at login

	rev2      bool // ENABLE IMAP4rev2
	utf8      bool // IMAP4rev2 or UTF8=ACCEPT: mailbox names and strings in UTF-8
	condstore bool
	qresync   bool

	sel      *selected
	saved    []uint32     // SEARCHRES: UIDs saved by SEARCH RETURN (SAVE)
	flagPend []flagChange // flag sets FETCH reported, for the view (applyFlagPend)

	stale    bool // a limited update (updateNew…) left changes to report
	stopping atomic.Bool
	stopText atomic.Pointer[string] // why, for the BYE; nil: the server shuts down
	// endReason says why a logged-in session ended, for its logout line.
	endReason string
}

// deadlineWriter gives every write to the client a deadline, so a client that stops
// reading cannot hold its session (and what it holds) forever.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.d))
	return w.c.Write(p)
}

func (s *Server) serveConn(ctx context.Context, c net.Conn, implicitTLS bool) {
	defer c.Close()
	if m := s.opts.Metrics.Connections; m != nil {
		m(1)
		defer m(-1)
	}
	sess := &session{srv: s, raw: c, conn: c, ip: remoteIP(c), start: time.Now()}
	sess.log = s.log.With("remote", c.RemoteAddr().String())
	if refusal := s.addSession(sess); refusal != "" {
		sess.log.Info("imap: connection refused", "reason", refusal)
		s.refuse(ctx, c, implicitTLS, refusal)
		return
	}
	defer s.removeSession(sess)
	stop := context.AfterFunc(ctx, sess.interrupt)
	defer stop()
	if implicitTLS {
		if s.opts.TLSConfig == nil {
			s.log.Error("imap: implicit TLS without a TLS configuration")
			return
		}
		tc, ok := sess.handshake(ctx, c)
		if !ok {
			return
		}
		sess.conn, sess.tls = tc, true
	}
	defer func() {
		if sess.sub != nil {
			sess.sub.Close()
		}
		sess.release()
		if sess.acc != nil {
			// sess.log names the account since the login.
			sess.log.Info("imap: logout", "protocol", "imap", "reason", sess.endReason,
				"duration", time.Since(sess.start).Round(time.Second).String())
		}
	}()
	sess.run(ctx)
}

// handshake runs a TLS handshake on c (the session's TCP connection, or its plain
// IMAP connection after STARTTLS) under the handshake deadline.
func (s *session) handshake(ctx context.Context, c net.Conn) (*tls.Conn, bool) {
	tc := tls.Server(c, s.srv.opts.TLSConfig)
	_ = c.SetDeadline(time.Now().Add(s.srv.lim.TLSHandshakeTimeout))
	if s.stopping.Load() {
		return nil, false // evicted or shut down before the deadline was set
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		if isTimeout(err) {
			s.log.Info("imap: tls handshake timeout")
		} else {
			s.log.Debug("imap: TLS handshake", "err", err)
		}
		return nil, false
	}
	_ = c.SetDeadline(time.Time{})
	return tc, true
}

// refuse says BYE to a connection addSession refused. On port 993 that takes a TLS
// handshake, which only a few refused connections at a time get; the rest are closed
// without a word.
func (s *Server) refuse(ctx context.Context, c net.Conn, implicitTLS bool, text string) {
	out := c
	if implicitTLS && s.opts.TLSConfig != nil {
		select {
		case s.refusing <- struct{}{}:
			defer func() { <-s.refusing }()
		default:
			return
		}
		tc := tls.Server(c, s.opts.TLSConfig)
		_ = c.SetDeadline(time.Now().Add(s.lim.TLSHandshakeTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		defer tc.Close()
		out = tc
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(out, "* BYE %s\r\n", text)
}

// interrupt asks the session to say goodbye: a blocked read returns at once, and the
// session sends BYE after its running command.
func (s *session) interrupt() {
	s.stopping.Store(true)
	// The raw connection: conn changes at STARTTLS, on the session's goroutine, and a
	// TLS connection's deadline is its TCP connection's anyway.
	_ = s.raw.SetReadDeadline(time.Now())
}

// interruptWith is interrupt with the text of the BYE.
func (s *session) interruptWith(text string) {
	s.stopText.Store(&text)
	s.interrupt()
}

// stopReason is the text of the BYE an interrupted session sends.
func (s *session) stopReason() string {
	if t := s.stopText.Load(); t != nil {
		return *t
	}
	return "Server shutting down"
}

// wr returns the session's writer, borrowing one from the server's pool if needed.
func (s *session) wr() *wire.Writer {
	if s.w == nil {
		s.w = s.srv.writer.Get().(*wire.Writer)
		s.w.Reset(s.out)
	}
	s.w.UTF8 = s.utf8
	return s.w
}

// flush sends what is buffered.
func (s *session) flush() error {
	if s.w == nil {
		return nil
	}
	return s.w.Flush()
}

// release flushes and returns the writer to the pool before the session blocks, so an
// idle connection holds no write buffer.
func (s *session) release() {
	if s.w == nil {
		return
	}
	_ = s.w.Flush()
	s.w.Reset(nil)
	s.srv.writer.Put(s.w)
	s.w = nil
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.out = deadlineWriter{c: c, d: s.srv.lim.WriteTimeout}
	s.r.Reset(bufio.NewReaderSize(c, readBufSize))
}

func (s *session) run(ctx context.Context) {
	lim := s.srv.lim
	s.r = wire.NewReader(nil, wire.Limits{
		MaxLine: lim.MaxLine, MaxLiteral: preAuthLiteral, MaxAppend: preAuthLiteral,
		MaxDepth: lim.MaxDepth, MaxArgs: lim.MaxArgs,
	})
	s.setConn(s.conn)
	s.r.Continue = s.continueLiteral
	s.wr().OK("*", wire.CodeCapability(s.capabilities()...), "coibox IMAP ready")
	for {
		s.release()
		_ = s.conn.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		if s.stopping.Load() {
			s.endReason = s.stopReason()
			s.bye(s.stopReason())
			return
		}
		cmd, err := s.r.ReadCommand(ctx)
		if err != nil {
			if e, ok := wire.AsError(err); ok {
				s.wr().WriteError(e)
				if e.Fatal {
					s.endReason = "protocol error"
					s.release()
					return
				}
				continue
			}
			switch {
			case s.stopping.Load():
				s.endReason = s.stopReason()
				s.bye(s.stopReason())
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.endReason = "idle timeout"
				s.bye("Autologout: idle for too long")
			default:
				s.endReason = "connection closed"
			}
			return
		}
		if quit := s.dispatch(ctx, cmd); quit {
			if s.endReason == "" {
				s.endReason = "connection closed"
			}
			s.release()
			return
		}
	}
}

// enableCondstore turns CONDSTORE on for a command that uses it without ENABLE or
// SELECT (CONDSTORE); the first such command tells the client the selected
// mailbox's HIGHESTMODSEQ, which from then on it must track (RFC 7162 §3.1).
func (s *session) enableCondstore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if v := s.sel; v != nil {
		s.wr().OK("*", wire.CodeHighestModSeq(uint64(v.modseq)), "Highest")
	}
}

func (s *session) bye(text string) {
	s.wr().StatusResponse("*", wire.BYE, "", text)
	s.release()
}

// continueLiteral answers a synchronizing literal: go on, or (APPEND) refuse it
// before the client sends a byte, when the message cannot be stored anyway.
func (s *session) continueLiteral(ctx context.Context, lit wire.LiteralInfo) error {
	if lit.Name == "APPEND" {
		if s.state == stateNotAuth {
			return &wire.Error{Tag: lit.Tag, Status: wire.NO, Text: "Log in first"}
		}
		if msg := s.overQuota(ctx, lit.Size); msg != "" {
			return &wire.Error{Tag: lit.Tag, Status: wire.NO, Code: wire.CodeOverQuota, Text: msg}
		}
	}
	s.wr().Continue("Ready for literal data")
	return s.flush()
}

// response ends a command with a status, a response code and text. It is an error so
// that handlers return failures and special OKs the same way; nil means a plain OK.
type response struct {
	status wire.Status
	code   wire.Code
	text   string
}

func (r *response) Error() string { return string(r.status) + " " + r.text }

func no(code wire.Code, format string, args ...any) error {
	return &response{status: wire.NO, code: code, text: fmt.Sprintf(format, args...)}
}

func bad(format string, args ...any) error {
	return &response{status: wire.BAD, text: fmt.Sprintf(format, args...)}
}

func okCode(code wire.Code, text string) error {
	return &response{status: wire.OK, code: code, text: text}
}

var (
	// errReplied: the handler wrote the tagged response itself.
	errReplied = errors.New("replied")
	// errClose: end the connection now (BYE sent, or the connection broke).
	errClose = errors.New("close connection")
)

type handler struct {
	fn     func(s *session, ctx context.Context, cmd *wire.Command) error
	states uint8 // bit per state
	uid    bool  // a UID form exists
	// noUpdates: the command must not carry other changes (EXPUNGE is forbidden
	// during FETCH, STORE and SEARCH; Delta Chat fails a FETCH that carries another
	// message's flags), so pending changes wait for the next command.
	noUpdates bool
}

const (
	inNotAuth  = 1 << stateNotAuth
	inAuth     = 1 << stateAuth
	inSelected = 1 << stateSelected
	inAny      = inNotAuth | inAuth | inSelected
	inLoggedIn = inAuth | inSelected
)

// handlerFor returns the handler of a command name (upper case).
func handlerFor(name string) (handler, bool) {
	switch name {
	case "CAPABILITY":
		return handler{fn: (*session).cmdCapability, states: inAny}, true
	case "NOOP":
		return handler{fn: (*session).cmdNoop, states: inAny}, true
	case "LOGOUT":
		return handler{fn: (*session).cmdLogout, states: inAny}, true
	case "ID":
		return handler{fn: (*session).cmdID, states: inAny}, true
	case "STARTTLS":
		return handler{fn: (*session).cmdStartTLS, states: inNotAuth}, true
	case "LOGIN":
		return handler{fn: (*session).cmdLogin, states: inNotAuth}, true
	case "AUTHENTICATE":
		return handler{fn: (*session).cmdAuthenticate, states: inNotAuth}, true
	case "ENABLE":
		return handler{fn: (*session).cmdEnable, states: inLoggedIn}, true
	case "COMPRESS":
		return handler{fn: (*session).cmdCompress, states: inLoggedIn}, true
	case "SELECT":
		return handler{fn: (*session).cmdSelect, states: inLoggedIn}, true
	case "EXAMINE":
		return handler{fn: (*session).cmdSelect, states: inLoggedIn}, true
	case "CREATE":
		return handler{fn: (*session).cmdCreate, states: inLoggedIn}, true
	case "DELETE":
		return handler{fn: (*session).cmdDelete, states: inLoggedIn}, true
	case "RENAME":
		return handler{fn: (*session).cmdRename, states: inLoggedIn}, true
	case "SUBSCRIBE":
		return handler{fn: (*session).cmdSubscribe, states: inLoggedIn}, true
	case "UNSUBSCRIBE":
		return handler{fn: (*session).cmdSubscribe, states: inLoggedIn}, true
	case "LIST":
		return handler{fn: (*session).cmdList, states: inLoggedIn}, true
	case "LSUB":
		return handler{fn: (*session).cmdList, states: inLoggedIn}, true
	case "NAMESPACE":
		return handler{fn: (*session).cmdNamespace, states: inLoggedIn}, true
	case "STATUS":
		return handler{fn: (*session).cmdStatus, states: inLoggedIn}, true
	case "APPEND":
		return handler{fn: (*session).cmdAppend, states: inLoggedIn}, true
	case "IDLE":
		return handler{fn: (*session).cmdIdle, states: inLoggedIn}, true
	case "GETMETADATA":
		return handler{fn: (*session).cmdGetMetadata, states: inLoggedIn}, true
	case "SETMETADATA":
		return handler{fn: (*session).cmdSetMetadata, states: inLoggedIn}, true
	case "GETQUOTA":
		return handler{fn: (*session).cmdGetQuota, states: inLoggedIn}, true
	case "GETQUOTAROOT":
		return handler{fn: (*session).cmdGetQuotaRoot, states: inLoggedIn}, true
	case "SETQUOTA":
		return handler{fn: (*session).cmdSetQuota, states: inLoggedIn}, true
	case "CHECK":
		return handler{fn: (*session).cmdNoop, states: inSelected}, true
	case "CLOSE":
		return handler{fn: (*session).cmdClose, states: inSelected}, true
	case "UNSELECT":
		return handler{fn: (*session).cmdClose, states: inSelected}, true
	case "EXPUNGE":
		return handler{fn: (*session).cmdExpunge, states: inSelected, uid: true}, true
	case "SEARCH":
		return handler{fn: (*session).cmdSearch, states: inSelected, uid: true, noUpdates: true}, true
	case "FETCH":
		return handler{fn: (*session).cmdFetch, states: inSelected, uid: true, noUpdates: true}, true
	case "STORE":
		return handler{fn: (*session).cmdStore, states: inSelected, uid: true, noUpdates: true}, true
	case "COPY":
		return handler{fn: (*session).cmdCopy, states: inSelected, uid: true}, true
	case "MOVE":
		return handler{fn: (*session).cmdCopy, states: inSelected, uid: true}, true
	}
	return handler{}, false
}

// dispatch runs one command and writes its tagged response; quit ends the session.
func (s *session) dispatch(ctx context.Context, cmd *wire.Command) (quit bool) {
	start := time.Now()
	name := cmd.Name
	if cmd.UID {
		name = "UID " + name
	}
	status := "OK"
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("imap: panic in command", "cmd", name, "panic", v, "stack", string(debug.Stack()))
			w := s.wr()
			w.BAD(cmd.Tag, "", "internal error")
			w.StatusResponse("*", wire.BYE, "", "internal error")
			s.release()
			quit, status = true, "BAD"
		}
		if m := s.srv.opts.Metrics.Command; m != nil {
			m(name, status, time.Since(start))
		}
	}()
	h, ok := handlerFor(cmd.Name)
	var err error
	switch {
	case !ok:
		err = bad("Unknown command %s", clip(cmd.Name))
	case cmd.UID && !h.uid:
		err = bad("%s has no UID form", cmd.Name)
	case h.states&(1<<s.state) == 0:
		err = bad("%s is not allowed %s", name, s.stateText())
	default:
		err = h.fn(s, ctx, cmd)
		if s.state == stateSelected && err != errClose && err != errReplied {
			kind := updateAll
			if h.noUpdates {
				kind = updateNew
				if cmd.UID {
					kind = updateNewExpunge
				}
			}
			if serr := s.updateWith(ctx, false, kind); serr != nil {
				err = serr
			}
		}
	}
	w := s.wr()
	var resp *response
	var werr *wire.Error
	switch {
	case err == nil:
		w.OK(cmd.Tag, "", name+" completed")
	case errors.As(err, &resp):
		status = string(resp.status)
		w.StatusResponse(cmd.Tag, resp.status, resp.code, resp.text)
	case errors.As(err, &werr):
		status = string(werr.Status)
		w.WriteError(werr)
		quit = werr.Fatal
	case err == errReplied:
	case err == errClose:
		quit = true
	case errors.Is(err, store.ErrStorageFull):
		// Nothing was written, and the same command can succeed once space returns.
		// OVERQUOTA (RFC 5530 §3) is the code clients already act on for "no room",
		// and Dovecot answers a full disk with it too.
		status = "NO"
		s.log.Error("imap: command failed: storage full", "cmd", name, "err", err)
		w.NO(cmd.Tag, wire.CodeOverQuota, "Not enough disk space on the server, try again later")
	default:
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true
		}
		status = "NO"
		s.log.Error("imap: command failed", "cmd", name, "err", err)
		w.NO(cmd.Tag, wire.CodeServerBug, "Internal error; try again")
	}
	if err := s.flush(); err != nil {
		return true
	}
	return quit
}

func (s *session) stateText() string {
	switch s.state {
	case stateNotAuth:
		return "before login"
	case stateAuth:
		return "without a selected mailbox"
	}
	return "with a selected mailbox"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// capabilities lists what the session may use now.
func (s *session) capabilities() []string {
	o := &s.srv.opts
	caps := []string{"IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"}
	if s.state == stateNotAuth {
		if !s.tls && o.TLSConfig != nil {
			caps = append(caps, "STARTTLS")
		}
		if s.loginDisabled() {
			caps = append(caps, "LOGINDISABLED")
		} else {
			caps = append(caps, "AUTH=PLAIN")
		}
		return caps
	}
	if s.caps != nil {
		return s.caps
	}
	caps = append(caps, "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC",
		"ESEARCH", "SEARCHRES", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
		"CHILDREN", "BINARY", "UTF8=ACCEPT", fmt.Sprintf("APPENDLIMIT=%d", s.srv.lim.MaxMessageSize),
		"STATUS=SIZE", "METADATA", "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")
	if o.Compress && !s.compressed {
		caps = append(caps, "COMPRESS=DEFLATE")
	}
	if o.ExtraCapabilities != nil && s.acc != nil {
		caps = append(caps, o.ExtraCapabilities(s.acc)...)
	}
	return caps
}

// loginDisabled: a STARTTLS listener before STARTTLS.
func (s *session) loginDisabled() bool {
	o := &s.srv.opts
	return !s.tls && o.TLSConfig != nil
}

func (s *session) cmdCapability(_ context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	s.wr().Capability(s.capabilities()...)
	return nil
}

func (s *session) cmdNoop(_ context.Context, cmd *wire.Command) error {
	return cmd.NoArgs()
}

func (s *session) cmdLogout(_ context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	s.endReason = "LOGOUT"
	w := s.wr()
	w.StatusResponse("*", wire.BYE, "", "Logging out")
	w.OK(cmd.Tag, "", "LOGOUT completed")
	_ = s.flush()
	return errClose
}

func (s *session) cmdID(_ context.Context, cmd *wire.Command) error {
	if _, err := cmd.ID(); err != nil {
		return err
	}
	s.wr().ID(map[string]string{"name": "coibox", "vendor": "coibox"})
	return nil
}

func (s *session) cmdEnable(_ context.Context, cmd *wire.Command) error {
	atoms, err := cmd.Atoms()
	if err != nil {
		return err
	}
	var enabled []string
	for _, a := range atoms {
		switch a {
		case "CONDSTORE":
			if !s.condstore {
				s.condstore = true
				enabled = append(enabled, a)
			}
		case "QRESYNC":
			if !s.qresync {
				s.qresync, s.condstore = true, true
				enabled = append(enabled, a)
			}
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2, s.utf8 = true, true
				enabled = append(enabled, "IMAP4rev2")
			}
		case "UTF8=ACCEPT":
			if !s.utf8 || !s.rev2 {
				s.utf8 = true
				enabled = append(enabled, a)
			}
		}
	}
	s.r.UTF8 = s.utf8
	s.wr().Enabled(enabled...)
	return nil
}

func (s *session) cmdStartTLS(ctx context.Context, cmd *wire.Command) error {
	if err := cmd.NoArgs(); err != nil {
		return err
	}
	cfg := s.srv.opts.TLSConfig
	if s.tls || cfg == nil {
		return bad("STARTTLS is not available here")
	}
	if s.r.Buffered() > 0 {
		// Bytes sent before the handshake could be an injected command.
		return bad("STARTTLS must be the last command sent before the TLS handshake")
	}
	s.wr().OK(cmd.Tag, "", "Begin TLS negotiation now")
	if err := s.flush(); err != nil {
		return errClose
	}
	s.release()
	tc, ok := s.handshake(ctx, s.conn)
	if !ok {
		return errClose
	}
	s.tls = true
	s.setConn(tc)
	return errReplied
}

func (s *session) cmdCompress(_ context.Context, cmd *wire.Command) error {
	atoms, err := cmd.Atoms()
	if err != nil {
		return err
	}
	if !s.srv.opts.Compress {
		return bad("COMPRESS is not available here")
	}
	if len(atoms) != 1 || atoms[0] != "DEFLATE" {
		return no(wire.CodeCannot, "Only COMPRESS DEFLATE is supported")
	}
	if s.compressed {
		return no(wire.CodeCompressionActive, "Compression is already on")
	}
	s.wr().OK(cmd.Tag, "", "DEFLATE active")
	if err := s.flush(); err != nil {
		return errClose
	}
	s.release()
	r, w := wire.Compress(s.r.BufferedReader(), s.out)
	s.r.Reset(bufio.NewReaderSize(r, readBufSize))
	s.out = w
	s.compressed = true
	s.caps = nil
	return errReplied
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
