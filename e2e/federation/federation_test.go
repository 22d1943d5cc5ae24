package federation

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
	"github.com/coibox/coibox/queue/dsn"
)

// deliveryTimeout bounds how long a message may take from one peer to another.
const deliveryTimeout = 30 * time.Second

// TestFederation runs a.test on 127.0.0.2 and b.test (and c.test) on 127.0.0.3, each a
// coibox process with its own store, certificate and DKIM keys, and the DNS records
// `coibox dns` prints published in an in-process DNS server. The subtests share the
// servers and run in order; the last ones stop b and add Postfix.
func TestFederation(t *testing.T) {
	c := newCluster(t)
	a := newPeer(t, c, ipA, "a.test", []string{"alice"})
	// b also serves c.test, whose MX record points at a name its MTA-STS policy does
	// not list (below).
	b := newPeer(t, c, ipB, "b.test", []string{"bob"}, "mta-sts.c.test")
	b.mustAdmin(t, "", "domain", "add", "c.test")
	b.passwords["carol@c.test"] = "secret-carol-federation"
	b.mustAdmin(t, b.passwords["carol@c.test"]+"\n", "account", "add", "carol@c.test")
	b.publish(t, "c.test")
	c.dns.Remove("c.test", 15) // MX
	c.dns.Add("c.test. 300 IN MX 10 mx.c.test.\nmx.c.test. 300 IN A " + ipB)
	a.start(t)
	b.start(t)

	t.Run("dns check", func(t *testing.T) {
		r := a.admin(t, "", "dns", "check", "a.test")
		t.Logf("coibox dns check a.test:\n%s%s", r.Stdout, r.Stderr)
		for _, item := range []string{"MX a.test", "DKIM TXT", "MTA-STS TXT _mta-sts.a.test", "SPF TXT a.test", "DMARC TXT _dmarc.a.test", "SRV _submission._tcp.a.test"} {
			if !strings.Contains(r.Stdout, "OK       "+item) {
				t.Errorf("%s not reported OK", item)
			}
		}
		if c.https && r.Code != 0 {
			t.Errorf("exit code %d with every required record published and the policy served", r.Code)
		}
		// Take a required record away: the check must fail and say which.
		sts := grep(a.mustAdmin(t, "", "dns", "a.test").Stdout, "_mta-sts.a.test.")
		c.dns.Remove("_mta-sts.a.test", 16) // TXT
		defer c.dns.Add(sts)
		r = a.admin(t, "", "dns", "check", "a.test")
		if r.Code != 1 || !strings.Contains(r.Stdout, "MISSING  MTA-STS TXT _mta-sts.a.test") {
			t.Errorf("without _mta-sts: exit code %d, report:\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("a to b, authenticated", func(t *testing.T) {
		const id = "fed-1@a.test"
		if r := a.submit(t, "alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "hello b", id)); r.Code != 250 {
			t.Fatalf("submission: %v", r)
		}
		raw := b.waitFor(t, "bob@b.test", deliveryTimeout, "message "+id, byMessageID(id))
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		ar := m.Header.Get("Authentication-Results")
		if !strings.HasPrefix(ar, "mx.b.test;") {
			t.Errorf("Authentication-Results %q is not b's", ar)
		}
		for _, want := range []string{"dkim=pass", "header.d=a.test", "spf=pass", "dmarc=pass"} {
			if !strings.Contains(ar, want) {
				t.Errorf("Authentication-Results lacks %s:\n%s", want, ar)
			}
		}
		if n := strings.Count(string(raw), "DKIM-Signature:"); n != 2 {
			t.Errorf("%d DKIM signatures, want 2 (ed25519 and rsa)", n)
		}
		if c.https {
			// The policy was fetched and enforced: the delivery above needed a
			// certificate valid for mx.b.test.
			if !strings.Contains(grep(a.proc.Output(), `msg="mta-sts: policy updated"`), "domain=b.test") {
				t.Errorf("a did not fetch b.test's MTA-STS policy:\n%s", grep(a.proc.Output(), "mta-sts"))
			}
		}
	})

	t.Run("unknown user bounces", func(t *testing.T) {
		const id = "fed-bounce@a.test"
		if r := a.submit(t, "alice@a.test", []string{"nobody@b.test"}, message("alice@a.test", "nobody@b.test", "to nobody", id)); r.Code != 250 {
			t.Fatalf("submission: %v", r)
		}
		raw := a.waitFor(t, "alice@a.test", deliveryTimeout, "bounce of "+id, func(_ *mail.Message, raw []byte) bool {
			rep, err := dsn.Parse(raw)
			return err == nil && bytes.Contains(rep.OriginalHeader, []byte(id))
		})
		rep, err := dsn.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Recipients) != 1 {
			t.Fatalf("%d recipients in the report, want 1: %+v", len(rep.Recipients), rep.Recipients)
		}
		r := rep.Recipients[0]
		if !strings.EqualFold(r.FinalRecipient, "nobody@b.test") || r.Action != dsn.Failed || !strings.HasPrefix(r.Status, "5.") {
			t.Errorf("report recipient %+v, want nobody@b.test failed with 5.x.x", r)
		}
		if !strings.HasPrefix(r.DiagnosticCode, "550") || !strings.Contains(r.RemoteMTA, "mx.b.test") {
			t.Errorf("diagnostic %q from %q, want b's 550", r.DiagnosticCode, r.RemoteMTA)
		}
		if rep.ReportingMTA != "mx.a.test" {
			t.Errorf("reporting MTA %q, want mx.a.test", rep.ReportingMTA)
		}
		if id, _ := a.queueID(t, "nobody@b.test"); id != "" {
			t.Errorf("bounced message still queued as %s", id)
		}
	})

	t.Run("forged From refused by DMARC", func(t *testing.T) {
		cl, greet, err := testutil.DialSMTP(t.Context(), b.smtp, testutil.SMTPDialOptions{LocalIP: ipForger, Timeout: 20 * time.Second})
		if err != nil || greet.Code != 220 {
			t.Fatalf("connect from %s: %v %v", ipForger, greet, err)
		}
		defer cl.Close()
		if r, err := cl.Hello("mx.forger.test"); err != nil || r.Code != 250 {
			t.Fatalf("EHLO: %v %v", r, err)
		}
		r, err := cl.Send("x@a.test", []string{"bob@b.test"}, message("x@a.test", "bob@b.test", "trust me", "forged@a.test"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != 550 || !strings.HasPrefix(r.Text(), "5.7.1") {
			t.Errorf("forgery answered %v, want 550 5.7.1", r)
		}
		if n := b.countMessageID(t, "bob@b.test", "forged@a.test"); n != 0 {
			t.Errorf("the forgery was delivered %d times", n)
		}
	})

	t.Run("MTA-STS: MX not in the policy stays queued", func(t *testing.T) {
		if !c.https {
			t.Skip("needs port 443 on 127.0.0.3 for the policy (run as root)")
		}
		const id = "fed-sts@a.test"
		if r := a.submit(t, "alice@a.test", []string{"carol@c.test"}, message("alice@a.test", "carol@c.test", "strict", id)); r.Code != 250 {
			t.Fatalf("submission: %v", r)
		}
		const reason = "MTA-STS policy enforce: MX host mx.c.test is not in the policy of c.test"
		var qid, line string
		for deadline := time.Now().Add(deliveryTimeout); ; {
			if qid, line = a.queueID(t, "carol@c.test"); qid != "" && strings.Contains(line, "MTA-STS") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no MTA-STS failure for carol@c.test in the queue; coibox queue list:\n%s", a.mustAdmin(t, "", "queue", "list").Stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(line, "pending") {
			t.Errorf("queue list line %q: not pending", line)
		}
		show := a.mustAdmin(t, "", "queue", "show", qid).Stdout
		if !strings.Contains(show, reason) || !strings.Contains(show, "<"+id+">") {
			t.Errorf("coibox queue show %s lacks the reason or the message id:\n%s", qid, show)
		}
		if n := b.countMessageID(t, "carol@c.test", id); n != 0 {
			t.Errorf("delivered %d times despite the policy", n)
		}
		a.mustAdmin(t, "", "queue", "drop", qid)
		if qid, _ := a.queueID(t, "carol@c.test"); qid != "" {
			t.Errorf("still queued after drop")
		}
	})

	t.Run("b down: queued, retried, delivered once", func(t *testing.T) {
		b.stop(t)
		const id = "fed-retry@a.test"
		if r := a.submit(t, "alice@a.test", []string{"bob@b.test"}, message("alice@a.test", "bob@b.test", "while you were out", id)); r.Code != 250 {
			t.Fatalf("submission: %v", r)
		}
		// Wait for a failed attempt or two, visible in the queue.
		var show string
		for deadline := time.Now().Add(deliveryTimeout); ; {
			if qid, line := a.queueID(t, "bob@b.test"); strings.Contains(line, "pending") {
				if show = a.mustAdmin(t, "", "queue", "show", qid).Stdout; strings.Contains(show, "connection refused") {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no refused attempt in the queue; coibox queue list:\n%s", a.mustAdmin(t, "", "queue", "list").Stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("queued:\n%s", show)
		b.start(t)
		b.waitFor(t, "bob@b.test", deliveryTimeout, "message "+id, byMessageID(id))
		// A few more retry intervals: nothing may arrive twice.
		time.Sleep(3 * time.Second)
		if n := b.countMessageID(t, "bob@b.test", id); n != 1 {
			t.Errorf("delivered %d times, want once", n)
		}
		if out := a.mustAdmin(t, "", "queue", "list").Stdout; !strings.Contains(out, "The queue is empty.") {
			t.Errorf("queue after delivery:\n%s", out)
		}
	})

	t.Run("postfix", func(t *testing.T) { testPostfix(t, c, a) })
}

// grep returns the lines of s containing sub.
func grep(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
