package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/store"
)

const quota = 10_000 // the test store's default quota, small enough to fill

type fixture struct {
	st                *store.Store
	p                 *Pipeline
	alice, bob, carol *store.Account
	ctx               context.Context
	date              time.Time
}

// newFixture opens a store with example.org: alice, bob, carol (whose mailbox is nearly
// full), team@ (alice and bob), out@ (forwards to a remote address).
func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{DefaultQuota: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, ctx: ctx, date: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := st.AddDomain(ctx, "example.org", false); err != nil {
		t.Fatal(err)
	}
	accs := make([]*store.Account, 3)
	for i, a := range []string{"alice@example.org", "bob@example.org", "carol@example.org"} {
		if accs[i], err = st.AddAccount(ctx, a, "password-"+a); err != nil {
			t.Fatal(err)
		}
	}
	f.alice, f.bob, f.carol = accs[0], accs[1], accs[2]
	for _, al := range [][2]string{{"team@example.org", "alice@example.org"}, {"team@example.org", "bob@example.org"}, {"out@example.org", "someone@remote.example"}} {
		if err := st.AddAlias(ctx, al[0], al[1]); err != nil {
			t.Fatal(err)
		}
	}
	// Leave carol 200 bytes of room.
	if _, _, err := st.Deliver(ctx, &store.Delivery{Body: make([]byte, quota-200), Targets: []store.Target{{AccountID: f.carol.ID}}}); err != nil {
		t.Fatal(err)
	}
	if opts.Hostname == "" {
		opts.Hostname = "mx.example.org"
	}
	opts.Now = func() time.Time { return f.date }
	f.p = New(st, opts)
	return f
}

func (f *fixture) mx() *Envelope {
	return &Envelope{Kind: MX, RemoteIP: netip.MustParseAddr("192.0.2.7"), HELO: "mail.remote.example", Sender: "someone@remote.example"}
}

func (f *fixture) submission(sender string) *Envelope {
	return &Envelope{Kind: Submission, RemoteIP: netip.MustParseAddr("2001:db8::7"), HELO: "laptop", Sender: sender,
		AccountID: f.alice.ID, Login: f.alice.Address, TLS: &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}}
}

// inbox returns the bodies in an account's mailbox.
func (f *fixture) mailbox(t *testing.T, acc *store.Account, name string) []string {
	t.Helper()
	mb, err := f.st.Mailbox(f.ctx, acc.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	_, metas, err := f.st.Snapshot(f.ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range metas {
		uids = append(uids, m.UID)
	}
	msgs, err := f.st.Messages(f.ctx, mb.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, err := f.st.Body(f.ctx, m.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func replyCode(err error) string {
	if err == nil {
		return "ok"
	}
	if r, ok := AsReply(err); ok {
		return r.Error()
	}
	return "internal: " + err.Error()
}

func TestAddRecipient(t *testing.T) {
	f := newFixture(t, Options{MaxRecipients: 3})
	// carol is over quota for this test only: fill her remaining room.
	if _, _, err := f.st.Deliver(f.ctx, &store.Delivery{Body: make([]byte, 200), Targets: []store.Target{{AccountID: f.carol.ID}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   *Envelope
		rcpts []string
		want  []string // one reply per recipient
		n     int      // recipients in the envelope afterwards
	}{
		{"local user", f.mx(), []string{"alice@example.org"}, []string{"ok"}, 1},
		{"case and +tag", f.mx(), []string{"Alice+News@Example.ORG"}, []string{"ok"}, 1},
		{"alias to two accounts", f.mx(), []string{"team@example.org"}, []string{"ok"}, 1},
		{"alias forwarding away", f.mx(), []string{"out@example.org"}, []string{"ok"}, 1},
		{"unknown user", f.mx(), []string{"nobody@example.org"},
			[]string{"550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"}, 0},
		{"relay denied without login", f.mx(), []string{"x@remote.example"},
			[]string{"550 5.7.1 <x@remote.example>: Relay access denied"}, 0},
		{"bad syntax", f.mx(), []string{"postmaster"}, []string{"501 5.1.3 <postmaster>: Bad recipient address syntax"}, 0},
		{"mailbox full", f.mx(), []string{"carol@example.org"}, []string{"552 5.2.2 <carol@example.org>: mailbox full"}, 0},
		{"duplicate accepted once", f.mx(), []string{"bob@example.org", "BOB@example.org"}, []string{"ok", "ok"}, 1},
		{"too many", f.mx(), []string{"alice@example.org", "bob@example.org", "team@example.org", "out@example.org"},
			[]string{"ok", "ok", "ok", "452 4.5.3 Too many recipients (at most 3 per message)"}, 3},
		{"submission relays", f.submission("alice@example.org"), []string{"x@remote.example", "bob@example.org"}, []string{"ok", "ok"}, 2},
		{"submission from an alias of the account", f.submission("team@example.org"), []string{"x@remote.example"}, []string{"ok"}, 1},
		{"submission with a foreign sender", f.submission("bob@example.org"), []string{"x@remote.example", "bob@example.org"}, []string{
			"553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice@example.org",
			"553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice@example.org"}, 0},
		{"submission with the null sender", f.submission(""), []string{"x@remote.example"}, []string{
			"553 5.7.1 <>: Sender address rejected: not owned by user alice@example.org"}, 0},
		{"submission without login", &Envelope{Kind: Submission, Sender: "alice@example.org"}, []string{"bob@example.org"},
			[]string{"530 5.7.0 Authentication required"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, rcpt := range tc.rcpts {
				if got := replyCode(f.p.AddRecipient(f.ctx, tc.env, rcpt)); got != tc.want[i] {
					t.Errorf("RCPT %s: %s, want %s", rcpt, got, tc.want[i])
				}
			}
			if len(tc.env.Recipients) != tc.n {
				t.Errorf("%d recipients accepted, want %d", len(tc.env.Recipients), tc.n)
			}
		})
	}
}

func TestRcptCheck(t *testing.T) {
	f := newFixture(t, Options{RcptChecks: []RcptCheck{func(_ context.Context, env *Envelope, r *Recipient) error {
		if env.TLS == nil && len(r.Accounts) > 0 {
			return &Reply{Code: 530, Enhanced: [3]int{5, 7, 0}, Message: "Must issue a STARTTLS command first", Reason: "tls_required"}
		}
		return nil
	}}})
	env := f.mx()
	if got := replyCode(f.p.AddRecipient(f.ctx, env, "alice@example.org")); got != "530 5.7.0 Must issue a STARTTLS command first" {
		t.Fatalf("got %s", got)
	}
	if len(env.Recipients) != 0 {
		t.Fatal("refused recipient was added")
	}
}

func (f *fixture) add(t *testing.T, env *Envelope, rcpts ...string) {
	t.Helper()
	for _, r := range rcpts {
		if err := f.p.AddRecipient(f.ctx, env, r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
}

const plainMsg = "From: Someone <someone@remote.example>\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"

func TestDeliverLocal(t *testing.T) {
	f := newFixture(t, Options{})
	env := f.mx()
	env.ID = "trace1"
	f.add(t, env, "alice@example.org")
	res, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(plainMsg)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != 1 || res.QueueID != 0 || len(res.Failed) != 0 || res.ID != "trace1" {
		t.Fatalf("result %+v", res)
	}
	got := f.mailbox(t, f.alice, "INBOX")
	want := "Received: from mail.remote.example ([192.0.2.7])\r\n" +
		"\tby mx.example.org with ESMTP id trace1\r\n" +
		"\tfor <alice@example.org>;\r\n" +
		"\tSun, 01 Mar 2026 12:00:00 +0000\r\n" + plainMsg
	if len(got) != 1 || got[0] != want {
		t.Fatalf("INBOX holds %q,\nwant %q", got, want)
	}
}

func TestReceivedField(t *testing.T) {
	date := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tls13 := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"plain, two recipients", Message{Envelope: Envelope{ID: "x", HELO: "a.example", RemoteIP: netip.MustParseAddr("192.0.2.1"),
			Recipients: []Recipient{{Address: "a@b"}, {Address: "c@d"}}}},
			"Received: from a.example ([192.0.2.1])\r\n\tby h with ESMTP id x;\r\n\tSun, 01 Mar 2026 12:00:00 +0000\r\n"},
		{"TLS and login over IPv6", Message{Envelope: Envelope{ID: "x", HELO: "pc", RemoteIP: netip.MustParseAddr("2001:db8::1"), TLS: tls13, AccountID: 1,
			Recipients: []Recipient{{Address: "a@b"}}}},
			"Received: from pc ([IPv6:2001:db8::1])\r\n\tby h with ESMTPSA (TLS 1.3 TLS_AES_128_GCM_SHA256) id x\r\n\tfor <a@b>;\r\n\tSun, 01 Mar 2026 12:00:00 +0000\r\n"},
		{"SMTPUTF8, hostile HELO, no address", Message{Envelope: Envelope{ID: "x", HELO: "evil)\r\nX-Injected: 1 (", SMTPUTF8: true,
			Recipients: []Recipient{{Address: "ü@b"}}}},
			"Received: from evil???X-Injected:?1??\r\n\tby h with UTF8SMTP id x\r\n\tfor <ü@b>;\r\n\tSun, 01 Mar 2026 12:00:00 +0000\r\n"},
		{"no HELO", Message{Envelope: Envelope{ID: "x", RemoteIP: netip.MustParseAddr("::ffff:192.0.2.1"), Recipients: []Recipient{{Address: "a@b"}, {Address: "c@d"}}}},
			"Received: from unknown ([192.0.2.1])\r\n\tby h with ESMTP id x;\r\n\tSun, 01 Mar 2026 12:00:00 +0000\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := receivedField(&tc.m, "h", date); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDeliverMultiRecipientSharesBody(t *testing.T) {
	f := newFixture(t, Options{})
	env := f.mx()
	// team@ reaches alice and bob; alice@ named again must not give her two copies.
	f.add(t, env, "team@example.org", "alice@example.org")
	res, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(plainMsg)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != 2 {
		t.Fatalf("%d local copies, want 2", res.Local)
	}
	var bodyIDs []int64
	for _, acc := range []*store.Account{f.alice, f.bob} {
		mb, err := f.st.Mailbox(f.ctx, acc.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := f.st.Messages(f.ctx, mb.ID, []uint32{1, 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("%s has %d messages, want 1", acc.Address, len(msgs))
		}
		bodyIDs = append(bodyIDs, msgs[0].BodyID)
	}
	if bodyIDs[0] != bodyIDs[1] {
		t.Errorf("copies have bodies %d and %d, want one shared body", bodyIDs[0], bodyIDs[1])
	}
}

func TestDeliverSubmissionQueuesRemote(t *testing.T) {
	kicks := 0
	f := newFixture(t, Options{Queued: func() { kicks++ }})
	env := f.submission("alice@example.org")
	env.RequireTLS = true
	f.add(t, env, "x@remote.example", "bob@example.org", "out@example.org")
	body := "From: Alice <alice@example.org>\r\nTo: x@remote.example\r\n\r\nHi\r\n"
	res, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != 1 || res.Queued != 2 || res.QueueID == 0 {
		t.Fatalf("result %+v", res)
	}
	if kicks != 1 {
		t.Errorf("Queued called %d times, want once", kicks)
	}
	q, err := f.st.QueueEntries(f.ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Sender != "alice@example.org" || q[0].AccountID != f.alice.ID || !q[0].RequireTLS || len(q[0].Rcpts) != 2 ||
		q[0].Rcpts[0].Rcpt != "x@remote.example" || q[0].Rcpts[1].Rcpt != "someone@remote.example" {
		t.Fatalf("queue %+v", q)
	}
	queued, err := f.st.Body(f.ctx, q[0].BodyID)
	if err != nil {
		t.Fatal(err)
	}
	local := f.mailbox(t, f.bob, "INBOX")
	if len(local) != 1 || local[0] != string(queued) {
		t.Fatalf("local and queued copies differ or are missing: %q", local)
	}
	if !strings.HasPrefix(local[0], "Received: from laptop ([IPv6:2001:db8::7])\r\n\tby mx.example.org with ESMTPSA") {
		t.Errorf("Received field: %q", local[0])
	}
	onlyLocal := f.submission("alice@example.org")
	f.add(t, onlyLocal, "bob@example.org")
	if _, err := f.p.Deliver(f.ctx, &Message{Envelope: *onlyLocal, Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	if kicks != 1 {
		t.Errorf("a local-only delivery woke the queue (%d calls)", kicks)
	}
}

func TestFromHeaderRule(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name, header string
		want         string
	}{
		{"own address", "From: Alice <alice@example.org>", "ok"},
		{"own address, +tag and case", "From: ALICE+x@Example.org", "ok"},
		{"alias of the account", "From: team@example.org", "ok"},
		{"encoded display name in an unknown charset", "From: =?x-unknown?q?Al=E9?= <alice@example.org>", "ok"},
		{"folded", "From: Alice\r\n <alice@example.org>", "ok"},
		{"someone else", "From: Bob <bob@example.org>", "550 5.7.1 From header address <bob@example.org> not owned by user alice@example.org"},
		{"one of two not owned", "From: alice@example.org, mallory@remote.example",
			"550 5.7.1 From header address <mallory@remote.example> not owned by user alice@example.org"},
		{"missing", "Subject: no from", "550 5.7.1 Invalid FROM header: no From header field"},
		{"twice", "From: alice@example.org\r\nFrom: bob@example.org", "550 5.7.1 Invalid FROM header: more than one From header field"},
		{"only in the body", "Subject: x\r\n\r\nFrom: alice@example.org", "550 5.7.1 Invalid FROM header: no From header field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := f.submission("alice@example.org")
			f.add(t, env, "bob@example.org")
			_, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(tc.header + "\r\n\r\nbody\r\n")})
			if got := replyCode(err); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDeliverQuotaAfterRcpt(t *testing.T) {
	f := newFixture(t, Options{})
	big := plainMsg + strings.Repeat("x", 300) + "\r\n" // more than carol's 200 bytes of room

	env := f.mx()
	f.add(t, env, "alice@example.org", "carol@example.org")
	res, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(big)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Local != 1 || len(res.Failed) != 1 || res.Failed[0].Address != "carol@example.org" || res.Failed[0].Err.Code != 552 {
		t.Fatalf("result %+v", res)
	}

	env = f.mx()
	f.add(t, env, "carol@example.org")
	_, err = f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(big)})
	if got := replyCode(err); got != "552 5.2.2 <carol@example.org>: mailbox full" {
		t.Fatalf("all targets over quota: %s", got)
	}
}

func TestChecks(t *testing.T) {
	var seen string
	checks := []Check{
		func(_ context.Context, m *Message) (*Verdict, error) {
			seen = m.Received
			return &Verdict{Header: []string{"Authentication-Results: mx.example.org; none"}}, nil
		},
		func(_ context.Context, m *Message) (*Verdict, error) {
			if strings.Contains(string(m.Body), "spam") {
				return &Verdict{Mailbox: "Junk", Flags: []string{"$Junk"}}, nil
			}
			return nil, nil
		},
		func(_ context.Context, m *Message) (*Verdict, error) {
			if strings.Contains(string(m.Body), "cleartext") {
				return &Verdict{Reject: &Reply{Code: 523, Message: "Encryption Needed: Invalid Unencrypted Mail", Reason: "policy"}}, nil
			}
			return &Verdict{Mailbox: "Chats"}, nil // loses to Junk, which came first
		},
		func(_ context.Context, m *Message) (*Verdict, error) {
			if strings.Contains(string(m.Body), "broken") {
				return nil, errors.New("resolver down")
			}
			return nil, nil
		},
	}
	f := newFixture(t, Options{Checks: checks})
	deliver := func(body string) error {
		env := f.mx()
		f.add(t, env, "alice@example.org")
		_, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(plainMsg + body)})
		return err
	}
	if err := deliver("spam\r\n"); err != nil {
		t.Fatal(err)
	}
	junk := f.mailbox(t, f.alice, "Junk")
	if len(junk) != 1 || !strings.HasPrefix(junk[0], "Authentication-Results: mx.example.org; none\r\nReceived: from ") || seen == "" || !strings.HasPrefix(junk[0][46:], seen) {
		t.Fatalf("Junk holds %q", junk)
	}
	if got := replyCode(deliver("cleartext\r\n")); got != "523 0.0.0 Encryption Needed: Invalid Unencrypted Mail" {
		t.Errorf("rejecting check: %s", got)
	}
	if err := deliver("broken\r\n"); err == nil || func() bool { _, ok := AsReply(err); return ok }() {
		t.Errorf("failing check: %v, want an internal error", err)
	}
	if n := len(f.mailbox(t, f.alice, "INBOX")); n != 0 {
		t.Errorf("INBOX has %d messages, want 0", n)
	}
}

func TestDeliverRefusals(t *testing.T) {
	f := newFixture(t, Options{MaxMessageBytes: 1000, MaxHops: 3})
	tests := []struct {
		name, body string
		rcpts      bool
		want       string
	}{
		{"no recipients", plainMsg, false, "554 5.5.1 No valid recipients"},
		{"too big", plainMsg + strings.Repeat("x", 1000), true, "552 5.3.4 Message size exceeds fixed limit"},
		{"loop", strings.Repeat("Received: from a by b; date\r\n", 3) + plainMsg, true,
			"554 5.4.6 Too many hops (3 Received header fields): mail loop?"},
		{"under the hop limit", strings.Repeat("Received: from a by b; date\r\n", 2) + plainMsg, true, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := f.mx()
			if tc.rcpts {
				f.add(t, env, "alice@example.org")
			}
			_, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(tc.body)})
			if got := replyCode(err); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNormalizeNewlines(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"\n.\n", "\r\n.\r\n"},
		{"a\r\nb\nc\r\r\n", "a\r\nb\r\nc\r\r\n"},
		{"no newline", "no newline"},
	}
	for _, tc := range tests {
		if got := string(normalizeNewlines([]byte(tc.in))); got != tc.want {
			t.Errorf("normalizeNewlines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScanHeader(t *testing.T) {
	tests := []struct {
		name, msg string
		from      []string
		received  int
	}{
		{"simple", "From: a@b\r\nReceived: x\r\nreceived : y\r\n\r\nFrom: body@b\r\n", []string{"a@b"}, 2},
		{"folded", "FROM: A\r\n\t<a@b>\r\nSubject: s\r\n\r\n", []string{"A\t<a@b>"}, 0},
		{"bare LF and no body", "From: a@b\nX: y\n", []string{"a@b"}, 0},
		{"not a field", "garbage line\r\nFrom: a@b\r\n\r\n", []string{"a@b"}, 0},
		{"empty", "", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := scanHeader([]byte(tc.msg))
			if strings.Join(h.from, "|") != strings.Join(tc.from, "|") || h.received != tc.received {
				t.Errorf("got from %q received %d, want %q %d", h.from, h.received, tc.from, tc.received)
			}
		})
	}
}

func FuzzFromHeader(f *testing.F) {
	for _, s := range []string{
		plainMsg,
		"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>, \"x, y\" <x@y>\r\n\r\n",
		"From: (comment) a@b (more)\r\n\tSubject: folded\r\n",
		"From:\r\n\r\n",
		"From: group: a@b, c@d;\r\n\r\n",
		"from : <@route:a@b>\n\nbody",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := scanHeader(msg)
		addrs, err := fromAddresses(h)
		if err == nil && len(addrs) == 0 {
			t.Fatal("no error and no address")
		}
		for _, a := range addrs {
			if !strings.Contains(a, "@") {
				t.Fatalf("address %q without @", a)
			}
		}
		n := normalizeNewlines(msg)
		for i, c := range n {
			if c == '\n' && (i == 0 || n[i-1] != '\r') {
				t.Fatalf("bare LF left at %d in %q", i, n)
			}
		}
	})
}

// FuzzReceivedField checks that no HELO name or recipient, however hostile, breaks
// the Received field out of its lines: every line but the first is a continuation.
func FuzzReceivedField(f *testing.F) {
	f.Add("mail.example.org", "a@example.org")
	f.Add("evil\r\nX-Injected: yes", "a@b>\r\nBcc: x")
	f.Add("", "\xff\xfe")
	f.Fuzz(func(t *testing.T, helo, rcpt string) {
		m := &Message{Envelope: Envelope{ID: "id", HELO: helo, Recipients: []Recipient{{Address: rcpt}}}}
		got := receivedField(m, "mx.example.org", time.Unix(0, 0).UTC())
		if !strings.HasPrefix(got, "Received: from ") || !strings.HasSuffix(got, "\r\n") {
			t.Fatalf("malformed: %q", got)
		}
		lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("line %d has a bare CR or LF: %q", i, l)
			}
			if i > 0 && !strings.HasPrefix(l, "\t") {
				t.Fatalf("line %d is not a continuation: %q", i, l)
			}
		}
	})
}

// TestBareCR: a CR that starts no CRLF is refused on every way in, with the reply
// smtpd and /mxdeliv pass on; a bare LF is stored as CRLF.
func TestBareCR(t *testing.T) {
	f := newFixture(t, Options{})
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"Subject: a\r\n\r\nline one\rline two\r\n", false},
		{"Subject: a\r\n\r\nends in CR\r", false},
		{"Subject: a\r\n\r\nbare LF\nis fine\r\n", true},
	} {
		env := f.mx()
		f.add(t, env, "alice@example.org")
		_, err := f.p.Deliver(f.ctx, &Message{Envelope: *env, Body: []byte(tc.body)})
		r, isReply := AsReply(err)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q refused: %v", tc.body, err)
		case !tc.ok && (!isReply || r.Error() != "550 5.6.0 Message refused: it contains a bare CR (carriage return without line feed), which RFC 5322 forbids"):
			t.Errorf("%q: %v, want the bare-CR refusal", tc.body, err)
		}
	}
}
