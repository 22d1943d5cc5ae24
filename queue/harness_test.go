package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/coibox/coibox/queue/dsn"
	"github.com/coibox/coibox/queue/internal/testpki"
	"github.com/coibox/coibox/store"
)

// clock is a fake time source shared by the store and the queue.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// received is one message as a sink got it.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	Opts smtp.MailOptions
	User string // AUTH user, if any
}

// sink is a go-smtp server that records what it receives and answers as told.
type sink struct {
	t        testing.TB
	srv      *smtp.Server
	addr     string
	sessions atomic.Int32

	mu   sync.Mutex
	msgs []received
	// Replies: nil accepts. rcpt sees the recipient address.
	mail func(from string) error
	rcpt func(to string) error
	data func() error
	auth func(user, pass string) error
}

type sinkOpts struct {
	cert       *tls.Certificate // nil: no STARTTLS
	implicit   bool             // TLS from the start (smarthost on 465)
	requireTLS bool
	smtputf8   bool
	maxSize    int64
}

func newSink(t testing.TB, o sinkOpts) *sink {
	t.Helper()
	s := &sink{t: t}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		return &sinkSession{s: s, c: c}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.EnableREQUIRETLS = o.requireTLS
	s.srv.EnableSMTPUTF8 = o.smtputf8
	s.srv.MaxMessageBytes = o.maxSize
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.ErrorLog = discardLog{}
	if o.cert != nil {
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
	}
	var ln net.Listener
	var err error
	if o.implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", s.srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// testLog sends the queue's log to the test's, shown with -v or on failure.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

type sinkSession struct {
	s    *sink
	c    *smtp.Conn
	from string
	opts smtp.MailOptions
	to   []string
	user string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if ss.s.auth != nil {
			if err := ss.s.auth(user, pass); err != nil {
				return smtp.ErrAuthFailed
			}
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.s.mu.Lock()
	f := ss.s.mail
	ss.s.mu.Unlock()
	if f != nil {
		if err := f(from); err != nil {
			return err
		}
	}
	ss.from = from
	if opts != nil {
		ss.opts = *opts
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	f := ss.s.rcpt
	ss.s.mu.Unlock()
	if f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.data != nil {
		if err := ss.s.data(); err != nil {
			return err
		}
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.s.msgs = append(ss.s.msgs, received{From: ss.from, To: ss.to, Data: b, TLS: isTLS, Opts: ss.opts, User: ss.user})
	return nil
}

func smtpErr(code int, enh smtp.EnhancedCode, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// fakeSigner prepends a recognisable header naming the signing domain.
type fakeSigner struct{ n atomic.Int32 }

func (f *fakeSigner) Sign(_ context.Context, domain string, msg []byte) ([]byte, error) {
	f.n.Add(1)
	if domain == "lists.test" {
		return nil, fmt.Errorf("load keys: %w", fs.ErrNotExist)
	}
	return []byte("DKIM-Signature: v=1; d=" + domain + "; b=fake\r\n"), nil
}

// env is one test's world: a store, DNS, sinks reachable at made-up addresses and a
// queue, all on a fake clock.
type env struct {
	t     testing.TB
	ctx   context.Context
	clk   *clock
	dir   string
	st    *store.Store
	dns   *dnstest.Server
	ca    *testpki.CA
	q     *Queue
	opts  Options
	mu    sync.Mutex
	hosts map[string]string // "ip:port" the queue dials → the sink's real address
	dials map[string]int    // connection attempts per "ip:port"
	stats map[string]int    // metrics
}

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, tweak func(*Options)) *env {
	t.Helper()
	e := &env{
		t: t, ctx: context.Background(), clk: &clock{t: t0}, dir: t.TempDir(),
		dns: dnstest.New(t), ca: testpki.NewCA(t),
		hosts: map[string]string{}, dials: map[string]int{}, stats: map[string]int{},
	}
	e.openStore()
	if _, err := e.st.AddDomain(e.ctx, "a.test", false); err != nil {
		t.Fatal(err)
	}
	count := func(prefix string) func(string) {
		return func(s string) {
			e.mu.Lock()
			e.stats[prefix+s]++
			e.mu.Unlock()
		}
	}
	e.opts = Options{
		Hostname:       "mx.a.test",
		Resolver:       dnsx.New(e.dns.Addr()),
		RootCAs:        e.ca.Pool,
		Now:            e.clk.Now,
		CommandTimeout: 10 * time.Second,
		DelayNotice:    4 * time.Hour,
		Dialer:         e.dial,
		Logger:         slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: Metrics{
			Recipient:  count("rcpt:"),
			Connection: count("conn:"),
			DSN:        count("dsn:"),
		},
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	e.q = New(e.st, e.opts)
	// The senders' own domain receives the DSNs.
	e.dns.Add("a.test. 60 IN MX 10 mx.a.test.\nmx.a.test. 60 IN A 192.0.2.1")
	return e
}

func (e *env) openStore() {
	st, err := store.Open(e.ctx, e.dir, store.Options{Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { st.Close() })
}

// restart closes the queue's store and opens it again with a new queue, as after a
// crash: everything the new queue knows comes from the database file.
func (e *env) restart() {
	e.st.Close()
	e.openStore()
	e.q = New(e.st, e.opts)
}

func (e *env) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	e.mu.Lock()
	real, ok := e.hosts[addr]
	e.dials[addr]++
	e.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (test: nothing at " + addr + ")")}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// route makes the queue's connections to ip (port 25 unless given) reach s.
func (e *env) route(ip string, s *sink) {
	e.routeAddr(net.JoinHostPort(ip, "25"), s.addr)
}

func (e *env) routeAddr(from, to string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if to == "" {
		delete(e.hosts, from)
	} else {
		e.hosts[from] = to
	}
}

func (e *env) stat(k string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats[k]
}

// mx publishes domain's MX host at ip and returns a sink there.
func (e *env) mx(domain, ip string, o sinkOpts) *sink {
	e.dns.Add(domain + ". 60 IN MX 10 mx." + domain + ".\nmx." + domain + ". 60 IN A " + ip)
	s := newSink(e.t, o)
	e.route(ip, s)
	return s
}

type msgOpt func(*store.Outbound)

func (e *env) enqueue(sender string, rcpts []string, body string, opts ...msgOpt) int64 {
	e.t.Helper()
	o := &store.Outbound{Sender: sender, Recipients: rcpts}
	for _, f := range opts {
		f(o)
	}
	id, err := e.st.Enqueue(e.ctx, []byte(body), o)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// drain delivers everything due now, including DSNs queued meanwhile, and waits
// until no delivery is in progress.
func (e *env) drain() {
	e.t.Helper()
	for range 100 {
		if _, err := e.q.dispatch(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		e.q.wg.Wait()
		due, err := e.st.QueueEntries(e.ctx, e.clk.Now(), 1)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(due) == 0 {
			return
		}
	}
	e.t.Fatal("queue does not settle")
}

// entries returns the whole queue.
func (e *env) entries() []store.QueueEntry {
	e.t.Helper()
	es, err := e.st.QueueEntries(e.ctx, time.Time{}, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func (e *env) rcpt(addr string) store.QueueRcpt {
	e.t.Helper()
	for _, en := range e.entries() {
		for _, r := range en.Rcpts {
			if r.Rcpt == addr {
				return r
			}
		}
	}
	e.t.Fatalf("recipient %s not queued", addr)
	return store.QueueRcpt{}
}

// dsns parses every DSN a sink received.
func dsns(t *testing.T, s *sink) []*dsn.Report {
	t.Helper()
	var out []*dsn.Report
	for _, m := range s.received() {
		rep, err := dsn.Parse(m.Data)
		if errors.Is(err, dsn.ErrNotDSN) {
			continue
		}
		if err != nil {
			t.Fatalf("bad DSN: %v\n%s", err, m.Data)
		}
		if m.From != "" {
			t.Errorf("DSN sent with envelope sender %q, want <>", m.From)
		}
		out = append(out, rep)
	}
	return out
}

// newPolicyServer serves an MTA-STS policy over HTTPS and returns its address.
func newPolicyServer(t *testing.T, cert tls.Certificate, policy string) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, policy)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func message(from, to, subject string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@a.test>\r\n\r\nHello.\r\n.leading dot\r\n"
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func has(s, sub string) bool { return strings.Contains(s, sub) }
