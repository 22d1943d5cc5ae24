package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/coibox/coibox/queue/dsn"
	"github.com/coibox/coibox/queue/internal/testpki"
	"github.com/coibox/coibox/store"
)

func TestDeliver(t *testing.T) {
	signer := &fakeSigner{}
	e := newEnv(t, func(o *Options) { o.Signer = signer })
	self := testpki.SelfSigned(t, "mx.b.test")
	b := e.mx("b.test", "192.0.2.2", sinkOpts{cert: &self})
	c := e.mx("c.test", "192.0.2.3", sinkOpts{})

	e.enqueue("alice@a.test", []string{"bob@b.test", "carol@c.test", "Dave@B.test"}, message("alice@a.test", "bob@b.test", "one"),
		func(o *store.Outbound) { o.EightBit = true })
	e.drain()

	got := b.received()
	if len(got) != 1 {
		t.Fatalf("b.test got %d transactions, want 1 with both recipients", len(got))
	}
	m := got[0]
	if m.From != "alice@a.test" || !slices.Equal(m.To, []string{"bob@b.test", "Dave@B.test"}) {
		t.Errorf("envelope %q → %q", m.From, m.To)
	}
	if !m.TLS {
		t.Error("b.test offers STARTTLS with a self-signed certificate: opportunistic TLS should still be used")
	}
	if m.Opts.Body != smtp.Body8BitMIME {
		t.Errorf("BODY = %q, want 8BITMIME", m.Opts.Body)
	}
	if !strings.HasPrefix(string(m.Data), "DKIM-Signature: v=1; d=a.test; b=fake\r\nFrom: <alice@a.test>") {
		t.Errorf("message not signed first:\n%s", m.Data)
	}
	if !contains(m.Data, "\r\n.leading dot\r\n") {
		t.Errorf("dot-stuffing not undone:\n%s", m.Data)
	}
	if got := c.received(); len(got) != 1 || got[0].TLS || !slices.Equal(got[0].To, []string{"carol@c.test"}) {
		t.Errorf("c.test got %+v", got)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left in the queue", n)
	}
	if e.stat("conn:unverified") != 1 || e.stat("conn:plain") != 1 || e.stat("rcpt:delivered") != 3 {
		t.Errorf("metrics %v", e.stats)
	}
	if signer.n.Load() != 2 {
		t.Errorf("signed %d times, want once per transaction", signer.n.Load())
	}
}

func TestSigningDomain(t *testing.T) {
	signer := &fakeSigner{}
	e := newEnv(t, func(o *Options) { o.Signer = signer })
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	tests := []struct {
		sender, from, want string
	}{
		{"alice@a.test", "alice@a.test", "a.test"},
		// Forwarded: the From domain is not ours, so sign as the envelope's domain.
		{"fwd+x@a.test", "someone@elsewhere.test", "a.test"},
		// Envelope from elsewhere, From ours (e.g. a list): the From domain.
		{"bounces@lists.test", "alice@a.test", "a.test"},
		{"bounces@lists.test", "x@other.test", ""}, // no key for lists.test: unsigned
	}
	for _, tc := range tests {
		e.enqueue(tc.sender, []string{"bob@b.test"}, message(tc.from, "bob@b.test", "x"))
		e.drain()
		got := b.received()
		last := got[len(got)-1]
		if tc.want == "" {
			if contains(last.Data, "DKIM-Signature") {
				t.Errorf("sender %s, From %s: signed without a key", tc.sender, tc.from)
			}
			continue
		}
		if want := "d=" + tc.want + ";"; !contains(last.Data, want) {
			t.Errorf("sender %s, From %s: signature %q, want %s", tc.sender, tc.from, strings.SplitN(string(last.Data), "\r\n", 2)[0], want)
		}
	}
}

func TestRetryThenDeliver(t *testing.T) {
	e := newEnv(t, nil)
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	fails := 2
	b.rcpt = func(string) error {
		if fails > 0 {
			fails--
			return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "try again later")
		}
		return nil
	}
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "retry"))

	e.drain()
	r := e.rcpt("bob@b.test")
	if r.State != store.RcptPending || r.Attempts != 1 || !has(r.LastError, "451 4.3.0 try again later") || !has(r.LastError, "mx.b.test") {
		t.Fatalf("after first attempt: %+v", r)
	}
	wait := r.NextAttempt.Sub(t0)
	if wait < 4*time.Minute || wait > 6*time.Minute {
		t.Errorf("first retry in %v, want 5m ± 10%%", wait)
	}

	// Not due yet: nothing happens.
	e.clk.Add(wait - time.Second)
	e.drain()
	if r := e.rcpt("bob@b.test"); r.Attempts != 1 {
		t.Fatalf("retried before due: %+v", r)
	}

	e.clk.Add(time.Second)
	e.drain()
	r = e.rcpt("bob@b.test")
	wait2 := r.NextAttempt.Sub(e.clk.Now())
	if r.Attempts != 2 || wait2 < 9*time.Minute || wait2 > 11*time.Minute {
		t.Fatalf("second retry in %v (attempts %d), want 10m ± 10%%", wait2, r.Attempts)
	}

	e.clk.Add(wait2)
	e.drain()
	if got := b.received(); len(got) != 1 {
		t.Fatalf("delivered %d times, want exactly once", len(got))
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if e.stat("rcpt:deferred") != 2 || e.stat("rcpt:delivered") != 1 {
		t.Errorf("metrics %v", e.stats)
	}
}

func TestBackoff(t *testing.T) {
	q := New(nil, Options{MinRetry: 5 * time.Minute, MaxRetry: 4 * time.Hour})
	far := t0.Add(100 * 24 * time.Hour)
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{0, 5 * time.Minute},
		{1, 10 * time.Minute},
		{2, 20 * time.Minute},
		{5, 160 * time.Minute},
		{6, 4 * time.Hour},
		{100, 4 * time.Hour},
	}
	for _, tc := range tests {
		for range 20 {
			d := q.nextAttempt(t0, tc.attempts, far).Sub(t0)
			lo, hi := time.Duration(float64(tc.want)*0.9), time.Duration(float64(tc.want)*1.1)
			if d < lo || d > hi {
				t.Errorf("attempts %d: wait %v, want %v ± 10%%", tc.attempts, d, tc.want)
			}
		}
	}
	// Never beyond the expiry: the last attempt happens at it.
	if got := q.nextAttempt(t0, 100, t0.Add(time.Minute)); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("next attempt %v past expiry", got)
	}
}

func TestPermanentFailureDSN(t *testing.T) {
	e := newEnv(t, nil)
	a := e.mx("a.test", "192.0.2.1", sinkOpts{})
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	b.rcpt = func(to string) error {
		if to == "nobody@b.test" {
			return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "<nobody@b.test>: no such user here")
		}
		return nil
	}
	e.enqueue("alice@a.test", []string{"bob@b.test", "nobody@b.test"}, message("alice@a.test", "bob@b.test", "perm"))
	e.drain()

	if got := b.received(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@b.test"}) {
		t.Fatalf("b.test got %+v", got)
	}
	reps := dsns(t, a)
	if len(reps) != 1 {
		t.Fatalf("%d DSNs, want 1", len(reps))
	}
	rep := reps[0]
	if got := a.received()[0].To; !slices.Equal(got, []string{"alice@a.test"}) {
		t.Errorf("DSN to %q", got)
	}
	want := dsn.Recipient{
		FinalRecipient: "nobody@b.test", Action: dsn.Failed, Status: "5.1.1", RemoteMTA: "mx.b.test",
		DiagnosticCode: "550 5.1.1 <nobody@b.test>: no such user here", LastAttempt: t0,
	}
	if len(rep.Recipients) != 1 || !rep.Recipients[0].LastAttempt.Equal(t0) {
		t.Fatalf("recipients %+v", rep.Recipients)
	}
	rep.Recipients[0].LastAttempt = t0
	if rep.Recipients[0] != want {
		t.Errorf("recipient\n got %+v\nwant %+v", rep.Recipients[0], want)
	}
	if rep.ReportingMTA != "mx.a.test" || !rep.ArrivalDate.Equal(t0) {
		t.Errorf("reporting MTA %q, arrival %v", rep.ReportingMTA, rep.ArrivalDate)
	}
	if rep.Header.Get("From") != "Mail Delivery System <MAILER-DAEMON@mx.a.test>" || rep.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("DSN header %v", rep.Header)
	}
	if !contains(rep.OriginalHeader, "Subject: perm") {
		t.Errorf("original header %q", rep.OriginalHeader)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if e.stat("rcpt:bounced") != 1 || e.stat("dsn:failed") != 1 {
		t.Errorf("metrics %v", e.stats)
	}
}

func TestLocalDSN(t *testing.T) {
	var got []byte
	var gotRcpt string
	e := newEnv(t, func(o *Options) {
		o.LocalDeliver = func(_ context.Context, rcpt string, msg []byte) (bool, error) {
			gotRcpt, got = rcpt, msg
			return true, nil
		}
	})
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	b.rcpt = func(string) error { return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "rejected") }
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "local"))
	e.drain()
	if gotRcpt != "alice@a.test" {
		t.Fatalf("DSN handed to %q", gotRcpt)
	}
	if rep, err := dsn.Parse(got); err != nil || rep.Recipients[0].Status != "5.7.1" {
		t.Fatalf("local DSN %v %+v", err, rep)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("DSN also queued: %d entries", n)
	}
}

func TestGiveUp(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.DelayNotice = 0
		o.LifetimeFor = func(domain string) time.Duration {
			if domain == "chat.test" {
				return 48 * time.Hour
			}
			return 0
		}
	})
	e.dns.Add("chat.test. 60 IN MX 10 mx.a.test.")
	a := e.mx("a.test", "192.0.2.1", sinkOpts{})
	e.dns.Add("b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.2") // nothing listens
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "old"))
	e.enqueue("carol@chat.test", []string{"bob@b.test"}, message("carol@chat.test", "bob@b.test", "chat"))

	// Retry for as long as the clock allows; MaxRetry 4h means many attempts.
	for e.clk.Now().Before(t0.Add(6 * 24 * time.Hour)) {
		e.drain()
		e.clk.Add(time.Hour)
	}
	reps := dsns(t, a)
	if len(reps) != 2 {
		t.Fatalf("%d DSNs, want 2", len(reps))
	}
	for _, rep := range reps {
		r := rep.Recipients[0]
		if r.Action != dsn.Failed || r.Status != "5.4.7" || !has(r.DiagnosticCode, "connection refused") {
			t.Errorf("expiry DSN recipient %+v", r)
		}
	}
	// The chat domain's message expired after 2 days, the other after 5.
	var chat, normal time.Time
	for _, rep := range reps {
		if strings.Contains(string(rep.OriginalHeader), "chat.test") {
			chat = rep.Recipients[0].LastAttempt
		} else {
			normal = rep.Recipients[0].LastAttempt
		}
	}
	if d := chat.Sub(t0); d < 48*time.Hour || d > 49*time.Hour {
		t.Errorf("chat message given up after %v, want 48h", d)
	}
	if d := normal.Sub(t0); d < 120*time.Hour || d > 121*time.Hour {
		t.Errorf("message given up after %v, want 120h", d)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if e.stat("rcpt:expired") != 2 {
		t.Errorf("metrics %v", e.stats)
	}
}

func TestDelayNotice(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRetry = time.Hour })
	a := e.mx("a.test", "192.0.2.1", sinkOpts{})
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	b.rcpt = func(string) error { return smtpErr(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full") }
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "slow"))
	for range 8 { // 8 hours of hourly attempts
		e.drain()
		e.clk.Add(time.Hour)
	}
	reps := dsns(t, a)
	if len(reps) != 1 {
		t.Fatalf("%d delay notices, want exactly 1", len(reps))
	}
	r := reps[0].Recipients[0]
	if r.Action != dsn.Delayed || r.Status != "4.2.2" || r.DiagnosticCode != "452 4.2.2 mailbox full" || !r.WillRetryUntil.Equal(t0.Add(120*time.Hour)) {
		t.Errorf("delay notice recipient %+v", r)
	}
	if d := r.LastAttempt.Sub(t0); d < 4*time.Hour || d > 5*time.Hour {
		t.Errorf("notice after %v, want about 4h", d)
	}
	if !has(reps[0].Text, "retried until") {
		t.Errorf("human text %q", reps[0].Text)
	}
	if rc := e.rcpt("bob@b.test"); rc.State != store.RcptPending || !rc.DelayNotified {
		t.Errorf("recipient %+v", rc)
	}
}

func TestNullSenderNeverBounced(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Lifetime = time.Hour })
	a := e.mx("a.test", "192.0.2.1", sinkOpts{})
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	b.rcpt = func(to string) error {
		if to == "gone@b.test" {
			return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return smtpErr(451, smtp.EnhancedCode{4, 0, 0}, "later")
	}
	e.enqueue("", []string{"gone@b.test"}, message("mailer-daemon@a.test", "gone@b.test", "bounce1"))
	e.enqueue("", []string{"slow@b.test"}, message("mailer-daemon@a.test", "slow@b.test", "bounce2"))
	for range 4 {
		e.drain()
		e.clk.Add(30 * time.Minute)
	}
	if got := a.received(); len(got) != 0 {
		t.Fatalf("bounced a bounce: %d messages to the sender's domain", len(got))
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func TestDestinationErrors(t *testing.T) {
	tests := []struct {
		name  string
		dns   string
		perm  bool
		diag  string
		route bool
	}{
		{name: "null MX", dns: "b.test. 60 IN MX 0 .", perm: true, diag: "556 5.1.10"},
		{name: "no such domain", dns: "", perm: true, diag: "550 5.1.2 domain b.test does not exist"},
		{name: "no MX, no address", dns: "b.test. 60 IN TXT \"x\"", perm: true, diag: "5.1.2 domain b.test has no MX and no address"},
		{name: "implicit MX", dns: "b.test. 60 IN A 192.0.2.2", route: true},
		{name: "MX host without address", dns: "b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN TXT \"x\"", diag: "451 4.4.3 MX host mx.b.test has no address"},
		{name: "connection refused", dns: "b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.9", diag: "4.4.1 connect to mx.b.test"},
		{name: "second MX", dns: "b.test. 60 IN MX 10 mx.b.test.\nb.test. 60 IN MX 20 mx2.b.test.\nmx.b.test. 60 IN A 192.0.2.9\nmx2.b.test. 60 IN A 192.0.2.2", route: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			a := e.mx("a.test", "192.0.2.1", sinkOpts{})
			if tc.dns != "" {
				e.dns.Add(tc.dns)
			}
			b := newSink(t, sinkOpts{})
			if tc.route {
				e.route("192.0.2.2", b)
			}
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "x"))
			e.drain()
			if tc.route {
				if len(b.received()) != 1 {
					t.Fatal("not delivered")
				}
				return
			}
			if tc.perm {
				reps := dsns(t, a)
				if len(reps) != 1 || !has(reps[0].Recipients[0].DiagnosticCode, tc.diag) {
					t.Fatalf("DSNs %+v, want one with %q", reps, tc.diag)
				}
				return
			}
			if r := e.rcpt("bob@b.test"); r.State != store.RcptPending || !has(r.LastError, tc.diag) {
				t.Fatalf("recipient %+v, want pending with %q", r, tc.diag)
			}
		})
	}
}

func TestDomainForms(t *testing.T) {
	e := newEnv(t, nil)
	idn := newSink(t, sinkOpts{smtputf8: true})
	e.dns.Add("xn--bcher-kva.test. 60 IN MX 10 mx.xn--bcher-kva.test.\nmx.xn--bcher-kva.test. 60 IN A 192.0.2.7")
	e.route("192.0.2.7", idn)
	lit := newSink(t, sinkOpts{})
	e.route("192.0.2.8", lit)
	e.enqueue("alice@a.test", []string{"leser@bücher.test"}, message("alice@a.test", "leser@bücher.test", "idn"),
		func(o *store.Outbound) { o.SMTPUTF8 = true })
	e.enqueue("alice@a.test", []string{"postmaster@[192.0.2.8]"}, message("alice@a.test", "postmaster@[192.0.2.8]", "literal"))
	e.drain()
	if got := idn.received(); len(got) != 1 || got[0].To[0] != "leser@bücher.test" {
		t.Errorf("IDN domain: %+v", got)
	}
	if got := lit.received(); len(got) != 1 || got[0].To[0] != "postmaster@[192.0.2.8]" {
		t.Errorf("address literal: %+v", got)
	}
}

func TestMTASTS(t *testing.T) {
	const policy = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n"
	tests := []struct {
		name      string
		policy    string
		mxCert    func(ca *testpki.CA) *tls.Certificate
		mxName    string
		delivered bool
		reason    string
	}{
		{
			name: "valid certificate", policy: policy,
			mxCert:    func(ca *testpki.CA) *tls.Certificate { c := ca.Leaf(t, "mx.b.test"); return &c },
			delivered: true,
		},
		{
			name: "certificate for another name", policy: policy,
			mxCert: func(ca *testpki.CA) *tls.Certificate { c := ca.Leaf(t, "other.b.test"); return &c },
			reason: "MTA-STS policy enforce: certificate for mx.b.test not valid: x509: certificate is valid for other.b.test",
		},
		{
			name: "self-signed certificate", policy: policy,
			mxCert: func(*testpki.CA) *tls.Certificate { c := testpki.SelfSigned(t, "mx.b.test"); return &c },
			reason: "MTA-STS policy enforce: certificate for mx.b.test not valid: x509: certificate signed by unknown authority",
		},
		{
			name: "no STARTTLS", policy: policy,
			mxCert: func(*testpki.CA) *tls.Certificate { return nil },
			reason: "MTA-STS policy enforce: mx.b.test offers no STARTTLS",
		},
		{
			name: "MX not in policy", policy: "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n",
			mxCert: func(ca *testpki.CA) *tls.Certificate { c := ca.Leaf(t, "mx.b.test"); return &c },
			reason: "MTA-STS policy enforce: MX host mx.b.test is not in the policy of b.test",
		},
		{
			name: "testing mode delivers anyway", policy: "version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: 86400\n",
			mxCert:    func(*testpki.CA) *tls.Certificate { c := testpki.SelfSigned(t, "mx.b.test"); return &c },
			delivered: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			b := e.mx("b.test", "192.0.2.2", sinkOpts{cert: tc.mxCert(e.ca)})
			ps := newPolicyServer(t, e.ca.Leaf(t, "mta-sts.b.test"), tc.policy)
			e.dns.Add("mta-sts.b.test. 60 IN A 192.0.2.80\n_mta-sts.b.test. 60 IN TXT \"v=STSv1; id=1\"")
			e.routeAddr("192.0.2.80:443", ps)

			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "sts"))
			e.drain()
			if tc.delivered {
				if got := b.received(); len(got) != 1 || !got[0].TLS {
					t.Fatalf("delivered %+v", got)
				}
				return
			}
			if len(b.received()) != 0 {
				t.Fatal("delivered despite the policy")
			}
			r := e.rcpt("bob@b.test")
			if r.State != store.RcptPending || !has(r.LastError, tc.reason) {
				t.Fatalf("recipient %+v\nwant pending with %q", r, tc.reason)
			}
		})
	}
}

func TestREQUIRETLS(t *testing.T) {
	tests := []struct {
		name      string
		verified  bool
		supports  bool
		delivered bool
	}{
		{"verified and supported", true, true, true},
		{"unverified", false, true, false},
		{"not supported", true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			a := e.mx("a.test", "192.0.2.1", sinkOpts{})
			cert := testpki.SelfSigned(t, "mx.b.test")
			if tc.verified {
				cert = e.ca.Leaf(t, "mx.b.test")
			}
			b := e.mx("b.test", "192.0.2.2", sinkOpts{cert: &cert, requireTLS: tc.supports})
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "rt"),
				func(o *store.Outbound) { o.RequireTLS = true })
			e.drain()
			got := b.received()
			if tc.delivered {
				if len(got) != 1 || !got[0].Opts.RequireTLS {
					t.Fatalf("got %+v, want delivery with REQUIRETLS", got)
				}
				return
			}
			if len(got) != 0 {
				t.Fatal("REQUIRETLS message sent without what it requires")
			}
			reps := dsns(t, a)
			if len(reps) != 1 || reps[0].Recipients[0].Status != "5.7.30" {
				t.Fatalf("DSNs %+v, want 5.7.30", reps)
			}
		})
	}
}

func TestSMTPUTF8(t *testing.T) {
	e := newEnv(t, nil)
	a := e.mx("a.test", "192.0.2.1", sinkOpts{smtputf8: true}) // the DSN goes to jörg@
	b := e.mx("b.test", "192.0.2.2", sinkOpts{smtputf8: true})
	c := e.mx("c.test", "192.0.2.3", sinkOpts{})
	utf8 := func(o *store.Outbound) { o.SMTPUTF8 = true }
	e.enqueue("jörg@a.test", []string{"bob@b.test", "carol@c.test"}, message("jörg@a.test", "bob@b.test", "utf8"), utf8)
	e.drain()
	if got := b.received(); len(got) != 1 || !got[0].Opts.UTF8 {
		t.Fatalf("b.test got %+v, want SMTPUTF8", got)
	}
	if len(c.received()) != 0 {
		t.Fatal("internationalized sender sent to a server without SMTPUTF8")
	}
	reps := dsns(t, a)
	if len(reps) != 1 || reps[0].Recipients[0].Status != "5.6.7" {
		t.Fatalf("DSNs %+v", reps)
	}
	if m := a.received()[0]; !m.Opts.UTF8 || m.To[0] != "jörg@a.test" {
		t.Errorf("DSN sent without SMTPUTF8: %+v", m)
	}
	// ASCII addresses with UTF-8 only in the header still go out.
	e.enqueue("alice@a.test", []string{"carol@c.test"}, message("alice@a.test", "carol@c.test", "grüße"), utf8)
	e.drain()
	if len(c.received()) != 1 {
		t.Fatal("ASCII envelope not delivered")
	}
}

func TestSizeLimit(t *testing.T) {
	e := newEnv(t, nil)
	a := e.mx("a.test", "192.0.2.1", sinkOpts{})
	e.mx("b.test", "192.0.2.2", sinkOpts{maxSize: 100})
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "big")+strings.Repeat("x", 200))
	e.drain()
	reps := dsns(t, a)
	if len(reps) != 1 || reps[0].Recipients[0].Status != "5.3.4" {
		t.Fatalf("DSNs %+v", reps)
	}
}

func TestSmarthost(t *testing.T) {
	for _, mode := range []string{SmarthostSTARTTLS, SmarthostTLS} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, nil)
			cert := e.ca.Leaf(t, "relay.isp.test")
			relay := newSink(t, sinkOpts{cert: &cert, implicit: mode == SmarthostTLS})
			relay.auth = func(user, pass string) error {
				if user != "home" || pass != "secret" {
					return errors.New("bad credentials")
				}
				return nil
			}
			e.opts.Smarthost = &Smarthost{Addr: "relay.isp.test:587", User: "home", Password: "secret", TLS: mode}
			e.dns.Add("relay.isp.test. 60 IN A 192.0.2.50")
			e.routeAddr("relay.isp.test:587", relay.addr)
			e.q = New(e.st, e.opts)

			e.enqueue("alice@a.test", []string{"bob@b.test", "carol@c.test"}, message("alice@a.test", "bob@b.test", "relay"))
			e.drain()
			got := relay.received()
			if len(got) != 1 || got[0].User != "home" || !got[0].TLS || !slices.Equal(got[0].To, []string{"bob@b.test", "carol@c.test"}) {
				t.Fatalf("relay got %+v", got)
			}

			// Wrong password: the message waits (and the log says why).
			e.opts.Smarthost.Password = "wrong"
			e.q = New(e.st, e.opts)
			e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "relay2"))
			e.drain()
			if r := e.rcpt("bob@b.test"); r.State != store.RcptPending || !has(r.LastError, "535") {
				t.Fatalf("recipient %+v", r)
			}
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnsPerDomain = 1 })
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	for i := range 5 {
		e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "m"+string(rune('0'+i))))
	}
	e.drain()
	if got := len(b.received()); got != 5 {
		t.Fatalf("delivered %d", got)
	}
	if n := b.sessions.Load(); n != 1 {
		t.Errorf("%d connections for 5 messages, want 1", n)
	}
}

func TestReconnectAfter421(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnsPerDomain = 1 })
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	n := 0
	b.mail = func(string) error {
		if n++; n == 3 {
			return smtpErr(421, smtp.EnhancedCode{4, 7, 0}, "too many messages on this connection")
		}
		return nil
	}
	for i := range 5 {
		e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "m"+string(rune('0'+i))))
	}
	e.drain()
	if got := len(b.received()); got != 5 {
		t.Fatalf("delivered %d of 5", got)
	}
	if s := b.sessions.Load(); s != 2 {
		t.Errorf("%d connections, want 2", s)
	}
}

func TestDeadDestination(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnsPerDomain = 1 })
	e.dns.Add("b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.2") // nothing listens
	for range 5 {
		e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "dead"))
	}
	e.drain()
	if n := e.dials["192.0.2.2:25"]; n != 1 {
		t.Errorf("%d connection attempts for 5 messages to a dead host, want 1", n)
	}
	for _, en := range e.entries() {
		if r := en.Rcpts[0]; r.Attempts != 1 || !has(r.LastError, "connect to mx.b.test") {
			t.Errorf("recipient %+v", r)
		}
	}
}

func TestFairDispatch(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnsPerDomain, o.Concurrency = 1, 2 })
	e.mx("b.test", "192.0.2.2", sinkOpts{})
	c := e.mx("c.test", "192.0.2.3", sinkOpts{})
	// A backlog for b.test well beyond what one scan takes, then one message for c.test.
	err := e.st.Write(e.ctx, func(tx *store.Tx) error {
		for range batchSize + 10 {
			if _, err := tx.Enqueue([]byte(message("alice@a.test", "bob@b.test", "bulk")), &store.Outbound{Sender: "alice@a.test", Recipients: []string{"bob@b.test"}}, t0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.enqueue("alice@a.test", []string{"carol@c.test"}, message("alice@a.test", "carol@c.test", "urgent"))
	if _, err := e.q.dispatch(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.q.wg.Wait()
	if len(c.received()) != 1 {
		t.Fatal("c.test's message waited behind b.test's backlog")
	}
	e.drain()
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func TestRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.dns.Add("b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.2") // down for now
	id := e.enqueue("alice@a.test", []string{"bob@b.test", "carol@b.test"}, message("alice@a.test", "bob@b.test", "restart"))
	e.drain()
	if r := e.rcpt("bob@b.test"); r.Attempts != 1 {
		t.Fatalf("first attempt not recorded: %+v", r)
	}

	e.restart()
	es := e.entries()
	if len(es) != 1 || es[0].ID != id || len(es[0].Rcpts) != 2 || es[0].Rcpts[0].Attempts != 1 {
		t.Fatalf("queue after restart: %+v", es)
	}
	b := newSink(t, sinkOpts{})
	e.route("192.0.2.2", b)
	e.clk.Add(time.Hour)
	e.drain()
	if got := b.received(); len(got) != 1 || len(got[0].To) != 2 {
		t.Fatalf("after restart delivered %+v", got)
	}
	e.restart()
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries after delivery and restart", n)
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t, nil)
	// A real clock for the queue; the store's fake one makes every entry long due.
	e.q = New(e.st, Options{
		Hostname: "mx.a.test", Resolver: e.opts.Resolver, Dialer: e.dial, CommandTimeout: 10 * time.Second,
	})
	b := e.mx("b.test", "192.0.2.2", sinkOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.q.Run(ctx) }()

	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(b.received()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("got %d messages, want %d", len(b.received()), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "run1"))
	e.q.Kick()
	waitFor(1)
	for i := range 20 {
		e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "run"+string(rune('a'+i))))
		e.q.Kick()
	}
	waitFor(21)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestAdmin(t *testing.T) {
	e := newEnv(t, nil)
	e.dns.Add("b.test. 60 IN MX 10 mx.b.test.\nmx.b.test. 60 IN A 192.0.2.2")
	id1 := e.enqueue("alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "admin1"))
	id2 := e.enqueue("alice@a.test", []string{"carol@b.test"}, message("alice@a.test", "carol@b.test", "admin2"))
	e.drain()

	list, err := e.q.List(e.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %v %+v", err, list)
	}
	en, err := e.q.Show(e.ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if en.Subject != "admin1" || en.From != "<alice@a.test>" || en.Size == 0 || en.Rcpts[0].Attempts != 1 || !has(en.Rcpts[0].LastError, "connect to mx.b.test") {
		t.Errorf("Show: %+v", en)
	}
	if _, err := e.q.Show(e.ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Show(999): %v", err)
	}

	b := newSink(t, sinkOpts{})
	e.route("192.0.2.2", b)
	if err := e.q.Retry(e.ctx, id1); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Drop(e.ctx, id2); err != nil {
		t.Fatal(err)
	}
	e.drain()
	if got := b.received(); len(got) != 1 || got[0].To[0] != "bob@b.test" {
		t.Fatalf("after Retry/Drop: %+v", got)
	}
	if n := len(e.entries()); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if err := e.q.Drop(e.ctx, id2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Drop: %v", err)
	}
}
