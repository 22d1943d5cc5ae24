package mailauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	msgdkim "github.com/emersion/go-msgauth/dkim"
)

const (
	goodIP = "192.0.2.1"
	badIP  = "198.51.100.9"
)

const zone = `
a.test.              IN TXT "v=spf1 ip4:192.0.2.1 -all"
bounce.a.test.       IN TXT "v=spf1 ip4:192.0.2.1 -all"
mx.a.test.           IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.a.test.       IN TXT "v=DMARC1; p=reject; sp=quarantine"
soft.test.           IN TXT "v=spf1 ip4:192.0.2.1 ~all"
q.test.              IN TXT "v=spf1 -all"
_dmarc.q.test.       IN TXT "v=DMARC1; p=quarantine"
strict.test.         IN TXT "v=spf1 -all"
bounce.strict.test.  IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.strict.test.  IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
none.test.           IN TXT "v=spf1 -all"
_dmarc.none.test.    IN TXT "v=DMARC1; p=none"
`

type env struct {
	r    *dnsx.Resolver
	srv  *dnstest.Server
	priv ed25519.PrivateKey
}

// newEnv serves the test zone plus one Ed25519 key, published as selector "s1" for
// every domain the tests sign as.
func newEnv(t *testing.T) *env {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.New(t)
	srv.Add(zone)
	for _, d := range []string{"a.test", "mail.a.test", "strict.test", "mail.strict.test", "other.test", "q.test", "tmp.test"} {
		srv.Add("s1._domainkey." + d + `. IN TXT "v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"`)
	}
	srv.ServFail("tmp._domainkey.a.test")
	srv.ServFail("_dmarc.tmp.test")
	return &env{r: dnsx.New(srv.Addr()), srv: srv, priv: priv}
}

func message(from string) string {
	return "From: " + from + "\r\n" +
		"To: bob@coibox.test\r\n" +
		"Subject: hi\r\n" +
		"Message-ID: <1@x>\r\n" +
		"\r\n" +
		"Hello.\r\n"
}

// sign prepends a signature by domain d with selector sel.
func (e *env) sign(t *testing.T, msg, d, sel string) string {
	t.Helper()
	var b bytes.Buffer
	err := msgdkim.Sign(&b, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: d, Selector: sel, Signer: e.priv,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		ip       string
		helo     string
		mailFrom string
		from     string
		signAs   string // "domain" or "domain/selector"; "" leaves the message unsigned
		dkimOnly bool
		mangle   func(string) string

		spf    Result
		dkim   []Result
		dmarc  Result
		policy Policy
		action Action
		reply  string
	}{
		{name: "spf pass aligns", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test",
			spf: Pass, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "spf fail under p=reject", ip: badIP, mailFrom: "x@a.test", from: "x@a.test",
			spf: Fail, dmarc: Fail, policy: PolicyReject, action: Reject,
			reply: "550 5.7.1 DMARC policy of a.test rejects this message"},
		{name: "spf softfail without dmarc", ip: badIP, mailFrom: "x@soft.test", from: "x@soft.test",
			spf: SoftFail, dmarc: None, action: Accept},
		{name: "spf none", ip: badIP, mailFrom: "x@nospf.test", from: "x@nospf.test",
			spf: None, dmarc: None, action: Accept},
		{name: "dkim pass rescues spf fail", ip: badIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test",
			spf: Fail, dkim: []Result{Pass}, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "p=quarantine", ip: badIP, mailFrom: "x@q.test", from: "x@q.test",
			spf: Fail, dmarc: Fail, policy: PolicyQuarantine, action: Quarantine},
		{name: "p=none", ip: badIP, mailFrom: "x@none.test", from: "x@none.test",
			spf: Fail, dmarc: Fail, policy: PolicyNone, action: Accept},
		{name: "dkim relaxed alignment", ip: badIP, mailFrom: "x@elsewhere.test", from: "x@a.test", signAs: "mail.a.test",
			spf: None, dkim: []Result{Pass}, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "dkim strict alignment fails", ip: badIP, mailFrom: "x@elsewhere.test", from: "x@strict.test", signAs: "mail.strict.test",
			spf: None, dkim: []Result{Pass}, dmarc: Fail, policy: PolicyReject, action: Reject,
			reply: "550 5.7.1 DMARC policy of strict.test rejects this message"},
		{name: "dkim strict alignment passes", ip: badIP, mailFrom: "x@elsewhere.test", from: "x@strict.test", signAs: "strict.test",
			spf: None, dkim: []Result{Pass}, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "spf relaxed alignment", ip: goodIP, mailFrom: "x@bounce.a.test", from: "x@a.test",
			spf: Pass, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "spf strict alignment fails", ip: goodIP, mailFrom: "x@bounce.strict.test", from: "x@strict.test",
			spf: Pass, dmarc: Fail, policy: PolicyReject, action: Reject},
		{name: "unaligned signature", ip: badIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "other.test",
			spf: Fail, dkim: []Result{Pass}, dmarc: Fail, policy: PolicyReject, action: Reject},
		{name: "subdomain gets sp=", ip: badIP, mailFrom: "x@sub.a.test", from: "x@sub.a.test",
			spf: None, dmarc: Fail, policy: PolicyQuarantine, action: Quarantine},
		{name: "null sender uses helo", ip: goodIP, helo: "mx.a.test", mailFrom: "", from: "x@a.test",
			spf: Pass, dmarc: Pass, policy: PolicyReject, action: Accept},
		{name: "body changed", ip: badIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test", mangle: changeBody,
			spf: Fail, dkim: []Result{Fail}, dmarc: Fail, policy: PolicyReject, action: Reject},
		{name: "dkim key unavailable", ip: badIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test/tmp",
			spf: Fail, dkim: []Result{TempError}, dmarc: Fail, policy: PolicyReject, action: Defer,
			reply: "451 4.7.1 DMARC check of a.test failed temporarily, try again later"},
		{name: "dkim key missing", ip: badIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test/nokey",
			spf: Fail, dkim: []Result{PermError}, dmarc: Fail, policy: PolicyReject, action: Reject},
		{name: "dmarc lookup fails", ip: badIP, mailFrom: "x@tmp.test", from: "x@tmp.test",
			spf: None, dmarc: TempError, action: Defer,
			reply: "451 4.7.1 DMARC policy of tmp.test could not be looked up, try again later"},
		{name: "dmarc lookup fails, exactly aligned", ip: badIP, mailFrom: "x@tmp.test", from: "x@tmp.test", signAs: "tmp.test",
			spf: None, dkim: []Result{Pass}, dmarc: TempError, action: Accept},
		{name: "two From fields", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test", mangle: addFrom,
			spf: Pass, dmarc: PermError, action: Reject,
			reply: "550 5.7.1 Message must have exactly one From header field with one domain"},
		{name: "From with two domains", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test, y@q.test",
			spf: Pass, dmarc: PermError, action: Reject},
		{name: "From with display name and encoded word", ip: goodIP, mailFrom: "x@a.test",
			from: "=?x-unknown?q?J=F6rg?= <x@A.TEST>", spf: Pass, dmarc: Pass, policy: PolicyReject, action: Accept},

		{name: "chatmail: aligned signature", ip: badIP, mailFrom: "x@other.test", from: "x@a.test", signAs: "a.test", dkimOnly: true,
			dkim: []Result{Pass}, action: Accept},
		{name: "chatmail: no signature", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test", dkimOnly: true,
			action: Reject, reply: "554 5.7.1 No DKIM signature found"},
		{name: "chatmail: relaxed is not enough", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "mail.a.test", dkimOnly: true,
			dkim: []Result{Pass}, action: Reject, reply: "554 5.7.1 No valid DKIM signature found"},
		{name: "chatmail: broken signature", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test", dkimOnly: true,
			mangle: changeBody, dkim: []Result{Fail}, action: Reject, reply: "554 5.7.1 No valid DKIM signature found"},
		{name: "chatmail: key unavailable", ip: goodIP, mailFrom: "x@a.test", from: "x@a.test", signAs: "a.test/tmp", dkimOnly: true,
			dkim: []Result{TempError}, action: Defer},
		{name: "chatmail: IP literal of the client", ip: badIP, mailFrom: "x@[198.51.100.9]", from: "x@[198.51.100.9]", dkimOnly: true,
			action: Accept},
		{name: "chatmail: IP literal of another host", ip: goodIP, mailFrom: "x@[198.51.100.9]", from: "x@[198.51.100.9]", dkimOnly: true,
			action: Reject, reply: "554 5.7.1 No DKIM signature found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := message(tt.from)
			if tt.signAs != "" {
				d, sel, ok := strings.Cut(tt.signAs, "/")
				if !ok {
					sel = "s1"
				}
				msg = e.sign(t, msg, d, sel)
			}
			if tt.mangle != nil {
				msg = tt.mangle(msg)
			}
			v, err := Check(t.Context(), e.r, Input{
				RemoteIP: net.ParseIP(tt.ip), Helo: tt.helo, MailFrom: tt.mailFrom,
				Message: []byte(msg), Hostname: "mx.coibox.test", DKIMOnly: tt.dkimOnly,
			})
			if err != nil {
				t.Fatal(err)
			}
			if v.SPF.Result != tt.spf {
				t.Errorf("spf = %q, want %q", v.SPF.Result, tt.spf)
			}
			var dk []Result
			for _, d := range v.DKIM {
				dk = append(dk, d.Status)
			}
			if !equal(dk, tt.dkim) {
				t.Errorf("dkim = %v (%+v), want %v", dk, v.DKIM, tt.dkim)
			}
			if v.DMARC.Result != tt.dmarc || v.DMARC.Policy != tt.policy {
				t.Errorf("dmarc = %+v, want %s with policy %q", v.DMARC, tt.dmarc, tt.policy)
			}
			if v.Action != tt.action {
				t.Errorf("action = %v (%s), want %v", v.Action, v.Reply, tt.action)
			}
			if tt.reply != "" && v.Reply != tt.reply {
				t.Errorf("reply = %q, want %q", v.Reply, tt.reply)
			}
			if (v.Action == Reject) != strings.HasPrefix(v.Reply, "5") || (v.Action == Defer) != strings.HasPrefix(v.Reply, "4") {
				t.Errorf("action %v with reply %q", v.Action, v.Reply)
			}
			checkField(t, v.Header())
		})
	}
}

func TestHeader(t *testing.T) {
	e := newEnv(t)
	msg := e.sign(t, message("Alice <alice@a.test>"), "a.test", "s1")
	msg = e.sign(t, msg, "other.test", "nokey")
	v, err := Check(t.Context(), e.r, Input{
		RemoteIP: net.ParseIP(goodIP), Helo: "mx.a.test", MailFrom: "alice@a.test",
		Message: []byte(msg), Hostname: "mx.coibox.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "Authentication-Results: mx.coibox.test;\r\n" +
		"\tspf=pass smtp.mailfrom=alice@a.test;\r\n" +
		"\tdkim=permerror reason=\"no key for signature: lookup nokey._domainkey.other.test on " + e.srv.Addr() + ": no such host\" header.d=other.test header.s=nokey header.a=ed25519-sha256;\r\n" +
		"\tdkim=pass header.d=a.test header.s=s1 header.a=ed25519-sha256;\r\n" +
		"\tdmarc=pass (p=reject) header.from=a.test\r\n"
	if got := v.Header(); got != want {
		t.Errorf("Header() =\n%s\nwant\n%s", got, want)
	}

	v = Verdict{authservID: "mx.coibox.test", SPF: SPFResult{Result: Neutral, MailFrom: "a\r\nX-Evil: 1@b\"c"}}
	h := v.Header()
	checkField(t, h)
	if !strings.Contains(h, `smtp.mailfrom="aX-Evil: 1@b\"c"`) {
		t.Errorf("hostile MAIL FROM rendered as %q", h)
	}
}

func TestStripForged(t *testing.T) {
	const body = "\r\nAuthentication-Results: mx.coibox.test; spf=pass\r\n"
	tests := []struct {
		name, in, want string
		host           string // default mx.coibox.test
	}{
		{"nothing to strip", "From: a\r\nAuthentication-Results: other.test; spf=pass\r\n" + body,
			"From: a\r\nAuthentication-Results: other.test; spf=pass\r\n" + body, ""},
		{"ours", "Authentication-Results: mx.coibox.test; dkim=pass\r\nFrom: a\r\n" + body, "From: a\r\n" + body, ""},
		{"case and dot", "From: a\r\nauthentication-results:MX.Coibox.Test.;\r\n dkim=pass\r\n\tdmarc=pass\r\n" + body, "From: a\r\n" + body, ""},
		{"comment and version", "From: a\r\nAuthentication-Results: (forged) mx.coibox.test 1; none\r\nTo: b\r\n" + body, "From: a\r\nTo: b\r\n" + body, ""},
		{"quoted", "Authentication-Results: \"mx.coibox.test\"; none\r\nAuthentication-Results: \"mx.coibox.test.evil\"; none\r\n" + body,
			"Authentication-Results: \"mx.coibox.test.evil\"; none\r\n" + body, ""},
		{"last field", "From: a\r\nAuthentication-Results: mx.coibox.test; none\r\n" + body, "From: a\r\n" + body, ""},
		{"no body", "From: a\r\nAuthentication-Results: mx.coibox.test; none", "From: a\r\n", ""},
		{"bare LF", "Authentication-Results: mx.coibox.test; none\nFrom: a\n\nAuthentication-Results: mx.coibox.test\n", "From: a\n\nAuthentication-Results: mx.coibox.test\n", ""},
		{"similar prefix kept", "Authentication-Results: mx.coibox.testing; none\r\n" + body, "Authentication-Results: mx.coibox.testing; none\r\n" + body, ""},
		{"no hostname strips nothing", "Authentication-Results: ; none\r\n" + body, "Authentication-Results: ; none\r\n" + body, "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			host := "mx.coibox.test"
			if tt.host != "" {
				host = tt.host
			}
			got := StripForged(in, host)
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.in == tt.want && &got[0] != &in[0] {
				t.Error("copied a message that needed no change")
			}
		})
	}
}

// checkField fails unless h is exactly one header field ending in CRLF, every line
// break in it being a fold.
func checkField(t *testing.T, h string) {
	t.Helper()
	if !strings.HasSuffix(h, "\r\n") {
		t.Fatalf("field does not end in CRLF: %q", h)
	}
	body := strings.TrimSuffix(h, "\r\n")
	for i := range len(body) {
		switch body[i] {
		case '\r':
			if i+2 >= len(body) || body[i+1] != '\n' || (body[i+2] != '\t' && body[i+2] != ' ') {
				t.Fatalf("line break that is not a fold at %d: %q", i, h)
			}
		case '\n':
			if i == 0 || body[i-1] != '\r' {
				t.Fatalf("bare LF at %d: %q", i, h)
			}
		}
	}
	fields, _ := scanHeader([]byte(h + "\r\n"))
	if len(fields) != 1 || fields[0].name != "Authentication-Results" {
		t.Fatalf("not one Authentication-Results field: %q", h)
	}
}

func changeBody(s string) string { return strings.Replace(s, "Hello", "Hullo", 1) }

func addFrom(s string) string { return "From: y@q.test\r\n" + s }

func equal(a, b []Result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
