package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/queue/internal/smtpc"
	"github.com/coibox/coibox/queue/mtasts"
	"github.com/coibox/coibox/store"
	"golang.org/x/net/idna"

	"github.com/coibox/coibox/internal/ascii"
	"github.com/coibox/coibox/internal/peertls"
)

// kind is the outcome of one attempt for one recipient.
type kind int

const (
	delivered kind = iota
	temporary
	permanent
)

// result is what one attempt did for one recipient.
type result struct {
	rcpt store.QueueRcpt
	kind kind
	// diag is the remote reply ("550 5.1.1 no such user") or, when no server
	// answered, our own description in the same form; it becomes the DSN's
	// Diagnostic-Code and the recipient's last error.
	diag   string
	status string // enhanced status code
	remote string // the host that gave diag, if a server did
}

// failure is a reason why a whole job could not be attempted or failed as a whole.
type failure struct {
	perm   bool
	code   int
	status string
	msg    string
	remote string
	// reply is set when a server's reply is the reason; it is then the diagnostic.
	reply string
	// plainRetry: STARTTLS failed on a connection that did not need it; the same host
	// is worth trying again without TLS (opportunistic TLS must not make mail stick).
	plainRetry bool
	// requireTLS: the failure is that the message's REQUIRETLS cannot be honoured.
	requireTLS bool
}

func (f *failure) Error() string { return f.diag() }

func (f *failure) diag() string {
	if f.reply != "" {
		return f.reply
	}
	return strconv.Itoa(f.code) + " " + f.status + " " + f.msg
}

func tempf(status, format string, args ...any) *failure {
	return &failure{code: 451, status: status, msg: fmt.Sprintf(format, args...)}
}

func permf(code int, status, format string, args ...any) *failure {
	return &failure{perm: true, code: code, status: status, msg: fmt.Sprintf(format, args...)}
}

// replyFailure turns a server's refusal into a failure.
func replyFailure(host string, rep smtpc.Reply) *failure {
	st := rep.Enhanced
	if st == "" {
		st = strconv.Itoa(rep.Code/100) + ".0.0"
	}
	return &failure{perm: rep.Permanent(), code: rep.Code, status: st, msg: rep.Text(), reply: rep.String(), remote: host}
}

// worker delivers the jobs of one destination; it resolves the destination once and
// keeps one connection open across jobs.
type worker struct {
	q    *Queue
	dest string

	route    *route
	routeErr *failure
	sess     *session
	// down is why no host of the destination could be reached; the worker's other
	// jobs fail the same way at once instead of each waiting out the same timeouts.
	down *failure
}

// route is where mail for the destination goes.
type route struct {
	hosts    []string // MX host names without trailing dot, in order of preference
	implicit bool     // no MX records: the domain itself is the host (RFC 5321 5.1)
	policy   *mtasts.Policy
	// domain is the destination in A-label form, DANE-TA's second reference identifier.
	domain string
	// dane: the hosts come from a DNSSEC-validated MX RRset (or are the implicit
	// MX), so a host whose addresses and TLSA records validate too gets DANE.
	dane bool
}

// session is an open SMTP connection ready for transactions.
type session struct {
	c         *smtpc.Client
	host      string
	tls       bool
	verified  bool
	verifyErr error
}

func (w *worker) closeConn() {
	if w.sess != nil {
		_ = w.sess.c.Quit()
		w.sess = nil
	}
}

// deliver makes one attempt at a job and returns one result per recipient.
func (w *worker) deliver(ctx context.Context, j *job) []result {
	q := w.q
	body, err := q.st.Body(ctx, j.entry.BodyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // dropped meanwhile
	}
	if err != nil {
		return failAll(j, tempf("4.3.0", "read message: %v", err))
	}
	sig, err := q.sign(ctx, j, body)
	if err != nil {
		// Unsigned mail from a domain that signs is likely to be refused under
		// DMARC; better to keep it and let the administrator see the error.
		return failAll(j, tempf("4.3.0", "sign message: %v", err))
	}
	if q.opts.Smarthost == nil && w.route == nil && w.routeErr == nil {
		w.route, w.routeErr = q.resolve(ctx, w.dest)
	}
	if w.routeErr != nil {
		return failAll(j, w.routeErr)
	}
	fed := q.federation(j, sig, body)
	reused := w.sess != nil
	if reused && j.entry.RequireTLS && !w.sess.requireTLSOK() {
		w.closeConn()
		reused = false
	}
	for {
		if w.sess == nil {
			if w.down != nil {
				return failAll(j, w.down)
			}
			s, rs, f := w.connect(ctx, j, fed)
			if rs != nil {
				return rs // delivered over HTTPS
			}
			if f != nil {
				// A REQUIRETLS refusal says nothing about other messages.
				if !j.entry.RequireTLS && ctx.Err() == nil {
					w.down = f
				}
				return failAll(j, f)
			}
			w.sess = s
		} else if rs := w.offer(ctx, j, fed, w.sess.host); rs != nil {
			// The kept connection's host gets the HTTPS offer a new one would.
			return rs
		}
		host := w.sess.host
		results, retry := w.send(ctx, j, sig, body)
		if retry && reused {
			// The kept connection had died (servers drop idle clients); a new one
			// gets a fair attempt.
			w.closeConn()
			reused = false
			continue
		}
		fed.smtpTook(host, results)
		return results
	}
}

func (s *session) requireTLSOK() bool {
	ok, _ := s.c.Extension("REQUIRETLS")
	return s.verified && ok
}

func failAll(j *job, f *failure) []result {
	out := make([]result, len(j.entry.Rcpts))
	k := temporary
	if f.perm {
		k = permanent
	}
	for i, r := range j.entry.Rcpts {
		out[i] = result{rcpt: r, kind: k, diag: f.diag(), status: f.status, remote: f.remote}
	}
	return out
}

// resolve finds the MX hosts of domain and its MTA-STS policy.
func (q *Queue) resolve(ctx context.Context, domain string) (*route, *failure) {
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		// An address literal (RFC 5321 4.1.3): that host and no other.
		ip := net.ParseIP(strings.TrimPrefix(strings.TrimSuffix(lit, "]"), "ipv6:"))
		if ip == nil || !strings.HasSuffix(lit, "]") {
			return nil, permf(501, "5.1.3", "bad address literal %s", domain)
		}
		return &route{hosts: []string{ip.String()}}, nil
	}
	// DNS knows internationalized names only in their A-label form. A "_" test
	// domain (peertls.Relaxed) is ASCII already, and IDNA refuses its "_".
	if !peertls.Relaxed(domain) {
		ascii, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return nil, permf(501, "5.1.3", "bad domain name %s: %v", domain, err)
		}
		domain = ascii
	}
	var (
		mxs    []*net.MX
		secure bool
		err    error
	)
	dr, _ := q.opts.Resolver.(daneResolver)
	if dr != nil {
		mxs, secure, err = dr.LookupMXSecure(ctx, domain)
	} else {
		mxs, err = q.opts.Resolver.LookupMX(ctx, domain)
	}
	switch {
	case errors.Is(err, dnsx.ErrNullMX):
		return nil, permf(556, "5.1.10", "domain %s accepts no mail (null MX)", domain)
	case dnsx.IsNotFound(err):
		return nil, permf(550, "5.1.2", "domain %s does not exist", domain)
	case err != nil:
		return nil, tempf("4.4.3", "look up MX of %s: %v", domain, err)
	}
	r := &route{domain: domain}
	for _, mx := range mxs {
		r.hosts = append(r.hosts, strings.ToLower(strings.TrimSuffix(mx.Host, ".")))
	}
	if len(r.hosts) == 0 {
		r.hosts, r.implicit = []string{domain}, true
	}
	// For the implicit MX, whether its address lookup validates decides (RFC 7672
	// 2.2.2); connect asks that of every host anyway.
	r.dane = dr != nil && (secure || r.implicit)
	r.policy = q.sts.Get(ctx, domain)
	return r, nil
}

// maxConnects bounds the connection attempts of one delivery attempt, so that a
// domain with many unreachable hosts cannot hold a worker for long.
const maxConnects = 8

// connect opens a session to the first usable host. With fed, each host is first
// offered the message over HTTPS; if one takes it, connect returns the results
// instead of a session.
func (w *worker) connect(ctx context.Context, j *job, fed *offers) (*session, []result, *failure) {
	q := w.q
	if q.opts.Smarthost != nil {
		s, f := q.connectSmarthost(ctx)
		return s, nil, f
	}
	pol := w.route.policy
	var last *failure
	tries := 0
	// outsidePolicy reports whether the MTA-STS policy rules host out.
	outsidePolicy := func(host string) bool {
		if pol == nil || pol.Match(host) {
			return false
		}
		if pol.Mode == mtasts.Enforce {
			last = tempf("4.7.5", "MTA-STS policy enforce: MX host %s is not in the policy of %s", host, w.dest)
			return true
		}
		q.log.Warn("queue: MTA-STS policy testing: MX host not in policy", "domain", w.dest, "mx", host)
		return false
	}
	for _, host := range w.route.hosts {
		// DANE takes precedence over MTA-STS (RFC 8461 2), so with a chance of DANE
		// the policy waits for the TLSA lookup.
		if !w.route.dane && outsidePolicy(host) {
			continue
		}
		ips, secure, err := w.lookupIP(ctx, host)
		if err != nil || len(ips) == 0 {
			if w.route.implicit && (err == nil || dnsx.IsNotFound(err)) {
				last = permf(550, "5.1.2", "domain %s has no MX and no address", w.dest)
			} else if err != nil {
				last = tempf("4.4.3", "look up address of %s: %v", host, err)
			} else {
				last = tempf("4.4.3", "MX host %s has no address", host)
			}
			continue
		}
		// HTTPS before SMTP on each host (chatmail §11.2). Without DANE a host the
		// MTA-STS policy rules out never gets here; with it the MX names are
		// DNSSEC-validated. Either way /mxdeliv verifies the certificate for the MX
		// name; TLSA records are for SMTP's port and are not consulted.
		if rs := w.offer(ctx, j, fed, host); rs != nil {
			return nil, rs, nil
		}
		var tlsa []dnsx.TLSA
		if w.route.dane {
			var f *failure
			if tlsa, f = q.daneTLSA(ctx, q.opts.Resolver.(daneResolver), host, secure); f != nil {
				last = f
				continue
			}
			if len(tlsa) == 0 && outsidePolicy(host) {
				continue
			}
		}
		var hostFail *failure
		for _, ip := range ips {
			if tries == maxConnects {
				break
			}
			tries++
			s, f := w.dial(ctx, j, host, ip, tlsa, true)
			if f != nil && f.plainRetry {
				q.log.Info("queue: STARTTLS failed, retrying without TLS", "mx", host, "ip", ip, "err", f.msg)
				s, f = w.dial(ctx, j, host, ip, nil, false)
			}
			if f == nil {
				return s, nil, nil
			}
			last, hostFail = f, f
			if ctx.Err() != nil {
				return nil, nil, tempf("4.4.2", "interrupted")
			}
		}
		if hostFail != nil && hostFail.reply == "" && q.opts.Federation != nil {
			// No server answered (connection or TLS error): what the cache knew of
			// the host may be stale, so its /mxdeliv is asked again next time.
			q.opts.Federation.Forget(host)
		}
	}
	if last == nil {
		last = tempf("4.4.4", "no usable MX host for %s", w.dest)
	}
	if last.requireTLS {
		// RFC 8689 4.1: a REQUIRETLS message that no host can take securely bounces.
		return nil, nil, permf(550, "5.7.30", "REQUIRETLS: %s", last.msg)
	}
	return nil, nil, last
}

// lookupIP returns host's addresses and, when the route may use DANE, whether they
// were DNSSEC-validated.
func (w *worker) lookupIP(ctx context.Context, host string) ([]net.IP, bool, error) {
	if w.route.dane {
		return w.q.opts.Resolver.(daneResolver).LookupIPSecure(ctx, host)
	}
	ips, err := w.q.opts.Resolver.LookupIP(ctx, host)
	return ips, false, err
}

// dial connects to one address of an MX host and sets up the session as the host's
// usable TLSA records (DANE), else the destination's MTA-STS policy, and the
// message's REQUIRETLS demand.
func (w *worker) dial(ctx context.Context, j *job, host string, ip net.IP, tlsa []dnsx.TLSA, tryTLS bool) (*session, *failure) {
	q := w.q
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(q.opts.RemotePort))
	c, f := q.open(ctx, host, addr, nil)
	if f != nil {
		return nil, f
	}
	s := &session{c: c, host: host}
	fail := func(f *failure) (*session, *failure) {
		_ = c.Quit()
		return nil, f
	}
	dane := len(tlsa) > 0
	// TLSA records that are all unusable still demand TLS, only not authenticated
	// (RFC 7672 2.2): no plain-text retry, no session without STARTTLS.
	mandatoryTLS := tlsa != nil
	policy := w.route.policy
	if dane {
		policy = nil // RFC 8461 2: DANE wins
	}
	enforce := policy != nil && policy.Mode == mtasts.Enforce
	mustVerify := dane || enforce || j.entry.RequireTLS
	if ok, _ := c.Extension("STARTTLS"); ok && tryTLS {
		// Verify by hand after the handshake: opportunistic TLS still encrypts
		// when the certificate is bad, and only a policy makes that fatal.
		cfg := &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if err := c.StartTLS(ctx, cfg, q.opts.Hostname); err != nil {
			_ = c.Close()
			if mandatoryTLS {
				return nil, tempf("4.7.5", "DANE: STARTTLS with %s failed: %v", host, err)
			}
			if enforce {
				return nil, tempf("4.7.5", "MTA-STS policy enforce: STARTTLS with %s failed: %v", host, err)
			}
			f := tempf("4.7.0", "STARTTLS with %s failed: %v", host, err)
			f.plainRetry, f.requireTLS = !mustVerify, j.entry.RequireTLS
			return nil, f
		}
		cs, _ := c.TLS()
		s.tls = true
		if dane {
			s.verifyErr = verifyDANE(cs, host, w.route.domain, tlsa)
		} else {
			s.verifyErr = q.verify(cs, host, w.route.domain)
		}
		s.verified = s.verifyErr == nil
	}
	if mandatoryTLS && !dane && !s.tls {
		return fail(tempf("4.7.5", "DANE: %s publishes TLSA records (none usable) but offers no STARTTLS", host))
	}
	if dane && !s.verified {
		switch {
		case !s.tls:
			return fail(tempf("4.7.5", "DANE: %s offers no STARTTLS", host))
		case errors.Is(s.verifyErr, errNoTLSAMatch):
			return fail(tempf("4.7.5", "DANE: certificate of %s matches no TLSA record", host))
		default:
			return fail(tempf("4.7.5", "DANE: certificate of %s not valid under its TLSA trust anchor: %v", host, s.verifyErr))
		}
	}
	if policy != nil && !s.verified {
		why := "offers no STARTTLS"
		if s.tls {
			why = "certificate for " + host + " not valid: " + s.verifyErr.Error()
		} else if !tryTLS {
			why = "STARTTLS failed"
		}
		if enforce {
			if s.tls {
				return fail(tempf("4.7.5", "MTA-STS policy enforce: %s", why))
			}
			return fail(tempf("4.7.5", "MTA-STS policy enforce: %s %s", host, why))
		}
		q.log.Warn("queue: MTA-STS policy testing: delivering despite failure", "domain", w.dest, "mx", host, "reason", why)
	}
	if j.entry.RequireTLS {
		if !s.verified {
			f := tempf("5.7.30", "no verified TLS with %s", host)
			f.requireTLS = true
			return fail(f)
		}
		if ok, _ := c.Extension("REQUIRETLS"); !ok {
			f := tempf("5.7.30", "%s does not support REQUIRETLS", host)
			f.requireTLS = true
			return fail(f)
		}
	}
	q.connected(s)
	return s, nil
}

// open dials addr and reads greeting and EHLO; tlsCfg, if set, wraps the connection
// in TLS first (implicit TLS).
func (q *Queue) open(ctx context.Context, host, addr string, tlsCfg *tls.Config) (*smtpc.Client, *failure) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := q.opts.Dialer(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, tempf("4.4.1", "connect to %s [%s]: %v", host, addr, err)
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, tempf("4.7.0", "TLS with %s [%s]: %v", host, addr, err)
		}
		conn = tc
	}
	c, err := smtpc.New(ctx, conn, q.opts.CommandTimeout)
	if err != nil {
		_ = conn.Close()
		return nil, sessionFailure(host, addr, err)
	}
	if err := c.Hello(ctx, q.opts.Hostname); err != nil {
		_ = c.Close()
		return nil, sessionFailure(host, addr, err)
	}
	return c, nil
}

func sessionFailure(host, addr string, err error) *failure {
	var se *smtpc.Error
	if errors.As(err, &se) {
		f := replyFailure(host, se.Reply)
		// A host that turns us away before any transaction is one bad host: the
		// next MX may accept, and a later attempt may too.
		f.perm = false
		return f
	}
	return tempf("4.4.2", "%s [%s]: %v", host, addr, err)
}

// connectSmarthost opens an authenticated session to the smarthost.
func (q *Queue) connectSmarthost(ctx context.Context) (*session, *failure) {
	sh := q.opts.Smarthost
	host, _, err := net.SplitHostPort(sh.Addr)
	if err != nil {
		return nil, tempf("4.3.5", "smarthost address %q: %v", sh.Addr, err)
	}
	cfg := &tls.Config{ServerName: host, RootCAs: q.opts.RootCAs, MinVersion: tls.VersionTLS12}
	var implicit *tls.Config
	if sh.TLS == SmarthostTLS {
		implicit = cfg
	}
	c, f := q.open(ctx, host, sh.Addr, implicit)
	if f != nil {
		return nil, f
	}
	s := &session{c: c, host: host, tls: implicit != nil, verified: implicit != nil}
	if sh.TLS == "" || sh.TLS == SmarthostSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			_ = c.Quit()
			return nil, tempf("4.7.0", "smarthost %s offers no STARTTLS", host)
		}
		if err := c.StartTLS(ctx, cfg, q.opts.Hostname); err != nil {
			_ = c.Close()
			return nil, tempf("4.7.0", "STARTTLS with smarthost %s: %v", host, err)
		}
		s.tls, s.verified = true, true
	}
	if sh.User != "" {
		if err := c.Auth(ctx, sh.User, sh.Password); err != nil {
			_ = c.Close()
			q.log.Error("queue: smarthost refused our credentials", "smarthost", sh.Addr, "err", err)
			return nil, sessionFailure(host, sh.Addr, err)
		}
	}
	q.connected(s)
	return s, nil
}

func (q *Queue) connected(s *session) {
	state := "plain"
	switch {
	case s.verified:
		state = "verified"
	case s.tls:
		state = "unverified"
		q.log.Info("queue: TLS certificate not valid, delivering over unverified TLS (opportunistic)", "mx", s.host, "err", s.verifyErr)
	}
	if q.opts.Metrics.Connection != nil {
		q.opts.Metrics.Connection(state)
	}
}

// verify checks the peer's certificate chain for host against the configured roots.
func (q *Queue) verify(cs tls.ConnectionState, host, domain string) error {
	return peertls.Verify(cs, host, domain, q.opts.RootCAs)
}

// send runs the transaction for j on the current session. retry reports a
// connection that failed before the message could have been taken, worth one more
// try on a fresh connection.
func (w *worker) send(ctx context.Context, j *job, sig, body []byte) (results []result, retry bool) {
	q, s := w.q, w.sess
	e := &j.entry
	env := &smtpc.Envelope{From: e.Sender}
	for _, r := range e.Rcpts {
		env.To = append(env.To, r.Rcpt)
	}
	for _, a := range append([]string{env.From}, env.To...) {
		// Addresses come from our own SMTP server, but a line break in one would
		// let it inject commands into the session: refuse rather than trust.
		if strings.ContainsAny(a, "\r\n\x00<>") {
			return failAll(j, permf(501, "5.1.3", "bad address %q", a)), false
		}
	}
	if ok, _ := s.c.Extension("8BITMIME"); ok && e.EightBit {
		env.MailParams = append(env.MailParams, "BODY=8BITMIME")
	}
	if e.SMTPUTF8 {
		if ok, _ := s.c.Extension("SMTPUTF8"); ok {
			env.MailParams = append(env.MailParams, "SMTPUTF8")
		} else if !asciiEnvelope(env) {
			// RFC 6531 3.4: an internationalized address cannot be downgraded.
			return failAll(j, permf(553, "5.6.7", "%s does not support SMTPUTF8, needed for this message's addresses", s.host)), false
		}
	}
	if e.RequireTLS {
		env.MailParams = append(env.MailParams, "REQUIRETLS")
	}
	size := int64(len(sig) + len(body))
	if max := s.c.MaxSize(); max > 0 && size > max {
		return failAll(j, permf(552, "5.3.4", "message of %d bytes exceeds the %d byte limit of %s", size, max, s.host)), false
	}
	if ok, _ := s.c.Extension("SIZE"); ok {
		env.MailParams = append(env.MailParams, "SIZE="+strconv.FormatInt(size, 10))
	}
	start := time.Now()
	res, err := s.c.Send(ctx, env, sig, body)
	if q.opts.Metrics.Transaction != nil {
		q.opts.Metrics.Transaction(time.Since(start))
	}
	var se *smtpc.Error
	switch {
	case errors.As(err, &se) && se.Reply.Code == 421:
		// The server is closing the connection (often a per-connection message
		// limit): the message was not taken, and a new connection may do.
		_ = s.c.Close()
		w.sess = nil
		return failAll(j, replyFailure(s.host, se.Reply)), true
	case errors.As(err, &se):
		return failAll(j, replyFailure(s.host, se.Reply)), false
	case err != nil:
		_ = s.c.Close()
		w.sess = nil
		if res == nil || !res.DataSent {
			return failAll(j, tempf("4.4.2", "connection to %s failed: %v", s.host, err)), true
		}
		return failAll(j, tempf("4.4.2", "connection to %s failed after the message was sent, outcome unknown: %v", s.host, err)), false
	}
	results = make([]result, len(e.Rcpts))
	for i, r := range e.Rcpts {
		rep := res.Rcpts[i]
		if rep.Code/100 == 2 {
			rep = res.Data
		}
		res := result{rcpt: r, diag: rep.String(), remote: s.host, status: rep.Enhanced}
		switch {
		case rep.Code/100 == 2:
			res.kind = delivered
		case rep.Permanent():
			res.kind = permanent
		default:
			res.kind = temporary
		}
		if res.status == "" {
			res.status = strconv.Itoa(rep.Code/100) + ".0.0"
		}
		results[i] = res
	}
	return results, false
}

func asciiEnvelope(env *smtpc.Envelope) bool {
	for _, a := range append([]string{env.From}, env.To...) {
		if !ascii.Is(a) {
			return false
		}
	}
	return true
}

// sign returns the DKIM signature fields for the message, or nil.
func (q *Queue) sign(ctx context.Context, j *job, body []byte) ([]byte, error) {
	if q.opts.Signer == nil {
		return nil, nil
	}
	domain := q.signingDomain(ctx, j.entry.Sender, body)
	if domain == "" {
		return nil, nil
	}
	sig, err := q.opts.Signer.Sign(ctx, domain, body)
	if errors.Is(err, fs.ErrNotExist) {
		// Not our domain to sign for (forwarded mail from elsewhere): send as is.
		return nil, nil
	}
	return sig, err
}

// signingDomain is the From header's domain when we serve it (what DMARC aligns
// with), else the envelope sender's domain (forwarded mail, SRS-less relaying).
func (q *Queue) signingDomain(ctx context.Context, sender string, body []byte) string {
	from := fromDomain(body)
	if from != "" {
		if _, err := q.st.Domain(ctx, from); err == nil {
			return from
		}
	}
	if sender != "" {
		if _, d, err := store.SplitAddress(sender); err == nil {
			return strings.ToLower(d)
		}
	}
	return from
}

// fromDomain returns the domain of the first From address, or "".
func fromDomain(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(dsnHeader(msg)))
	if err != nil {
		return ""
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) == 0 {
		return ""
	}
	_, d, err := store.SplitAddress(addrs[0].Address)
	if err != nil {
		return ""
	}
	return strings.ToLower(d)
}

// dsnHeader returns the header section with its terminating blank line, so that
// header parsing never reads the body.
func dsnHeader(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}
