package smtpd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/authlimit"
	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/smtpd"
)

func TestMXDelivery(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	long := strings.Repeat("longer than RFC 5322 allows, as generated HTML often is ", 100)
	c := dial(t, ts.addr)
	c.run(expand(`
		S: 220 mx.example.org ESMTP Service Ready
		C: EHLO client.example
		S: 250-Hello client.example
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-STARTTLS
		S: 250-SMTPUTF8
		S: 250-SIZE 31457280
		S: 250 LIMITS RCPTMAX=1000
		C: MAIL FROM:<someone@remote.example>
		S: 250 2.0.0 Roger, accepting mail from <someone@remote.example>
		C: RCPT TO:<Alice@Example.org>
		S: 250 2.0.0 I'll make sure <Alice@Example.org> gets this
		C: DATA
		S: 354 Go ahead. End your data with <CR><LF>.<CR><LF>
		C: From: someone@remote.example
		C: Subject: hello
		C:
		C: ..a line starting with a dot
		C: $LONG
		C: .
		S: 250 2.0.0 Ok: queued as *
		C: QUIT
		S: 221 2.0.0 Bye
		CLOSED
	`, "$LONG", long))
	msgs := ts.mailbox(t, ts.alice, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(msgs))
	}
	body := ts.body(t, msgs[0])
	for _, want := range []string{
		"Received: from client.example ([127.0.0.1])\r\n\tby mx.example.org with ESMTP id ",
		"\r\n\tfor <Alice@Example.org>;\r\n\t",
		"From: someone@remote.example\r\nSubject: hello\r\n\r\n.a line starting with a dot\r\n" + long + "\r\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("stored message lacks %q:\n%s", want, body)
		}
	}
}

func TestMXRefusals(t *testing.T) {
	ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.MaxRecipients = 2 })
	tests := []struct{ name, script string }{
		{"unknown user", `
			C: MAIL FROM:<someone@remote.example>
			S: 250 *
			C: RCPT TO:<nobody@example.org>
			S: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown`},
		{"no open relay", `
			C: MAIL FROM:<someone@remote.example>
			S: 250 *
			C: RCPT TO:<victim@remote.example>
			S: 550 5.7.1 <victim@remote.example>: Relay access denied`},
		{"no AUTH on MX", `
			C: AUTH PLAIN ` + plain("alice@example.org", alicePass) + `
			S: 503 5.5.1 AUTH is not available on this port, use submission`},
		{"declared size too big", `
			C: MAIL FROM:<someone@remote.example> SIZE=31457281
			S: 552 5.3.4 *`},
		{"too many recipients", `
			C: MAIL FROM:<someone@remote.example>
			S: 250 *
			C: RCPT TO:<alice@example.org>
			S: 250 *
			C: RCPT TO:<bob@example.org>
			S: 250 *
			C: RCPT TO:<alice+x@example.org>
			S: 452 4.5.3 Maximum limit of 2 recipients reached`},
		{"RCPT before MAIL", `
			C: RCPT TO:<alice@example.org>
			S: 502 5.5.1 Missing MAIL FROM command.`},
		{"DATA without recipients", `
			C: MAIL FROM:<someone@remote.example>
			S: 250 *
			C: RCPT TO:<nobody@example.org>
			S: 550 *
			C: DATA
			S: 502 5.5.1 Missing RCPT TO command.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.run("S: 220 *\nEHLO client.example\n" + tc.script)
		})
	}
}

func TestOversize(t *testing.T) {
	ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.MaxMessageBytes = 1000 })
	big := strings.Repeat("x", 78) + "\r\n"
	c := dial(t, ts.addr)
	c.run(`
		S: 220 *
		EHLO client.example
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
		C: DATA
		S: 354 *
	`)
	c.send("Subject: big\r\n\r\n" + strings.Repeat(big, 20) + ".\r\n")
	c.run(`
		S: 552 5.3.4 Message size exceeds fixed limit
		# The session goes on; BDAT is refused by its declared size.
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
	`)
	c.send("BDAT 1600 LAST\r\n" + strings.Repeat(big, 20))
	c.run(`
		S: 552 5.3.4 *
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
	`)
	// Chunks each within the limit, together over it.
	c.send("BDAT 800\r\n" + strings.Repeat(big, 10))
	c.expect("250 2.0.0 Continue")
	c.send("BDAT 800 LAST\r\n" + strings.Repeat(big, 10))
	c.expect("552 5.3.4 *")
	c.run(`
		C: NOOP
		S: 250 *
	`)
	if n := len(ts.mailbox(t, ts.alice, "INBOX")); n != 0 {
		t.Errorf("%d oversized messages stored", n)
	}
}

func TestBDAT(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	c := dial(t, ts.addr)
	c.run(`
		S: 220 *
		EHLO client.example
		C: MAIL FROM:<someone@remote.example> BODY=8BITMIME
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
	`)
	part1 := "From: someone@remote.example\r\nSubject: chunked\r\n\r\n"
	part2 := "line one\r\n.line with a dot, not stuffed in BDAT\r\n"
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	c.expect("250 2.0.0 Continue")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	c.expect("250 2.0.0 Ok: queued as *")
	msgs := ts.mailbox(t, ts.alice, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("INBOX has %d messages, want 1", len(msgs))
	}
	if body := ts.body(t, msgs[0]); !strings.HasPrefix(body, "Received: ") || !strings.HasSuffix(body, "\r\n"+part1+part2) {
		t.Errorf("stored %q", body)
	}
}

func TestPipeliningAndSharedBody(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	c := dial(t, ts.addr)
	c.run("S: 220 *\nEHLO client.example")
	// The whole envelope in one write, as PIPELINING allows.
	c.send("MAIL FROM:<someone@remote.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	c.run(`
		S: 250 2.0.0 Roger, *
		S: 250 2.0.0 I'll make sure <alice@example.org> gets this
		S: 250 2.0.0 I'll make sure <bob@example.org> gets this
		S: 354 *
		C: Subject: to both
		C:
		C: hi
		C: .
		S: 250 2.0.0 Ok: queued as *
	`)
	a, b := ts.mailbox(t, ts.alice, "INBOX"), ts.mailbox(t, ts.bob, "INBOX")
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("alice has %d, bob %d messages; want 1 each", len(a), len(b))
	}
	if a[0].BodyID != b[0].BodyID {
		t.Errorf("copies have bodies %d and %d, want one shared", a[0].BodyID, b[0].BodyID)
	}
	if body := ts.body(t, a[0]); strings.Contains(body, "\tfor <") {
		t.Errorf("Received names a recipient of a multi-recipient message:\n%s", body)
	}
}

func TestSubmission(t *testing.T) {
	ts := startServer(t, smtpd.Submission, nil)
	c := dial(t, ts.addr)
	c.run(expand(`
		S: 220 mx.example.org ESMTP Service Ready
		C: EHLO laptop
		S: 250-Hello laptop
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-STARTTLS
		S: 250-SMTPUTF8
		S: 250-SIZE 31457280
		S: 250 LIMITS RCPTMAX=1000
		# Nothing before TLS.
		C: AUTH PLAIN $GOOD
		S: 530 5.7.0 Must issue a STARTTLS command first
		C: MAIL FROM:<alice@example.org>
		S: 530 5.7.0 Must issue a STARTTLS command first
		C: STARTTLS
		S: 220 2.0.0 Ready to start TLS
		TLS
		C: EHLO laptop
		S: 250-Hello laptop
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-AUTH PLAIN LOGIN
		S: 250-SMTPUTF8
		S: 250-REQUIRETLS
		S: 250-SIZE 31457280
		S: 250 LIMITS RCPTMAX=1000
		C: MAIL FROM:<alice@example.org>
		S: 530 5.7.0 Authentication required
		C: AUTH PLAIN $BAD
		S: 535 5.7.8 Authentication credentials invalid
		C: AUTH PLAIN $GOOD
		S: 235 2.0.0 Authentication succeeded
		# The envelope sender must be the login's.
		C: MAIL FROM:<bob@example.org>
		S: 250 *
		C: RCPT TO:<friend@remote.example>
		S: 553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice@example.org
		C: RSET
		S: 250 *
		# So must the From header.
		C: MAIL FROM:<alice@example.org>
		S: 250 *
		C: RCPT TO:<friend@remote.example>
		S: 250 *
		C: DATA
		S: 354 *
		C: From: Bob <bob@example.org>
		C:
		C: spoofed
		C: .
		S: 550 5.7.1 From header address <bob@example.org> not owned by user alice@example.org
		# A good one: to a remote recipient (queued) and a local one (delivered).
		C: MAIL FROM:<alice@example.org>
		S: 250 *
		C: RCPT TO:<friend@remote.example>
		S: 250 *
		C: RCPT TO:<bob@example.org>
		S: 250 *
		C: DATA
		S: 354 *
		C: From: Alice <alice@example.org>
		C: To: friend@remote.example, bob@example.org
		C:
		C: hello
		C: .
		S: 250 2.0.0 Ok: queued as *
		C: QUIT
		S: 221 *
	`, "$GOOD", plain("alice@example.org", alicePass), "$BAD", plain("alice@example.org", "wrong")))

	q, err := ts.st.QueueEntries(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Sender != "alice@example.org" || q[0].AccountID != ts.alice.ID || len(q[0].Rcpts) != 1 || q[0].Rcpts[0].Rcpt != "friend@remote.example" {
		t.Fatalf("queue: %+v", q)
	}
	msgs := ts.mailbox(t, ts.bob, "INBOX")
	if len(msgs) != 1 || msgs[0].BodyID != q[0].BodyID {
		t.Fatalf("bob's INBOX %+v, want the queued message", msgs)
	}
	if body := ts.body(t, msgs[0]); !strings.Contains(body, "with ESMTPSA (TLS 1.3 ") {
		t.Errorf("Received field does not record TLS and login:\n%s", body)
	}
}

func TestAuthLogin(t *testing.T) {
	ts := startServer(t, smtpd.Submission, nil)
	tests := []struct{ name, script string }{
		{"prompted", `
			C: AUTH LOGIN
			S: 334 VXNlcm5hbWU6
			C: $USER
			S: 334 UGFzc3dvcmQ6
			C: $PASS
			S: 235 2.0.0 Authentication succeeded`},
		{"username as initial response", `
			C: AUTH LOGIN $USER
			S: 334 UGFzc3dvcmQ6
			C: $PASS
			S: 235 2.0.0 Authentication succeeded`},
		{"wrong password", `
			C: AUTH LOGIN $USER
			S: 334 UGFzc3dvcmQ6
			C: $WRONG
			S: 535 5.7.8 Authentication credentials invalid`},
		{"cancelled", `
			C: AUTH LOGIN
			S: 334 VXNlcm5hbWU6
			C: *
			S: 501 5.0.0 Negotiation cancelled`},
		{"PLAIN malformed", `
			C: AUTH PLAIN ` + b64("no separators") + `
			S: 501 5.5.2 Malformed authentication response`},
		{"PLAIN without initial response", `
			C: AUTH PLAIN
			S: 334 
			C: ` + plain("bob@example.org", bobPass) + `
			S: 235 2.0.0 Authentication succeeded`},
		{"unknown mechanism", `
			C: AUTH CRAM-MD5
			S: 504 5.7.4 Unsupported authentication mechanism`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.run(expand("S: 220 *\nEHLO laptop\nC: STARTTLS\nS: 220 *\nTLS\nEHLO laptop\n"+tc.script,
				"$USER", b64("alice@example.org"), "$PASS", b64(alicePass), "$WRONG", b64("wrong")))
		})
	}
}

func TestSubmissionsImplicitTLS(t *testing.T) {
	ts := startServer(t, smtpd.Submissions, nil)
	c := dialTLS(t, ts.addr)
	c.run(expand(`
		S: 220 mx.example.org ESMTP Service Ready
		C: EHLO laptop
		S: 250-Hello laptop
		S: 250-PIPELINING
		S: 250-8BITMIME
		S: 250-ENHANCEDSTATUSCODES
		S: 250-CHUNKING
		S: 250-AUTH PLAIN LOGIN
		S: 250-SMTPUTF8
		S: 250-REQUIRETLS
		S: 250-SIZE 31457280
		S: 250 LIMITS RCPTMAX=1000
		C: AUTH PLAIN $GOOD
		S: 235 *
		C: MAIL FROM:<alice+chat@example.org>
		S: 250 *
		C: RCPT TO:<bob@example.org>
		S: 250 *
		C: DATA
		S: 354 *
		C: From: alice@example.org
		C:
		C: over 465
		C: .
		S: 250 2.0.0 Ok: queued as *
	`, "$GOOD", plain("alice@example.org", alicePass)))
	if n := len(ts.mailbox(t, ts.bob, "INBOX")); n != 1 {
		t.Fatalf("bob has %d messages, want 1", n)
	}
}

// dialFrom connects from a given loopback address, so tests can be several clients.
func dialFrom(t *testing.T, addr, ip string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func TestConnectionLimits(t *testing.T) {
	t.Run("total", func(t *testing.T) {
		ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.MaxConnections = 2 })
		// Clients that have said EHLO keep their slots (silent ones would give theirs
		// up: TestSilentConnectionsGiveWay).
		a := dialFrom(t, ts.addr, "127.0.0.1")
		a.run("S: 220 *\nEHLO a.example")
		dialFrom(t, ts.addr, "127.0.0.2").run("S: 220 *\nEHLO b.example")
		dialFrom(t, ts.addr, "127.0.0.3").run(`
			S: 421 4.7.0 Too many connections, try again later
			CLOSED`)
		a.run("C: QUIT\nS: 221 *\nCLOSED")
		waitGreeting(t, ts.addr, "127.0.0.3")
	})
	t.Run("per IP", func(t *testing.T) {
		ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.MaxConnectionsPerIP = 2 })
		dialFrom(t, ts.addr, "127.0.0.1").expect("220 *")
		dialFrom(t, ts.addr, "127.0.0.1").expect("220 *")
		dialFrom(t, ts.addr, "127.0.0.1").run(`
			S: 421 4.7.0 Too many connections from your address, try again later
			CLOSED`)
		dialFrom(t, ts.addr, "127.0.0.2").expect("220 *")
	})
}

// waitGreeting retries until a connection from ip is greeted with 220: the server
// counts a closed connection out only once its session has ended.
func waitGreeting(t *testing.T, addr, ip string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialFrom(t, addr, ip)
		line, err := c.readLine()
		c.conn.Close()
		if err == nil && strings.HasPrefix(line, "220 ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused: %q, %v", line, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthLockout(t *testing.T) {
	const delay = 50 * time.Millisecond
	ts := startServer(t, smtpd.Submission, func(o *smtpd.Options) {
		o.AuthLimiter = authlimit.New(3, time.Minute).WithDelay(delay, 2*delay)
	})
	c := dialFrom(t, ts.addr, "127.0.0.1")
	c.run("S: 220 *\nEHLO laptop\nC: STARTTLS\nS: 220 *\nTLS\nEHLO laptop")
	start := time.Now()
	for range 3 {
		c.run("C: AUTH PLAIN " + plain("alice@example.org", "guess") + "\nS: 535 5.7.8 *")
	}
	if took := time.Since(start); took < 4*delay {
		t.Errorf("three failures answered in %v, want them slowed down (>= %v)", took, 4*delay)
	}
	// Locked out: even the right password, on this connection and on new ones.
	c.run(`
		C: AUTH PLAIN ` + plain("alice@example.org", alicePass) + `
		S: 421 4.7.0 Too many failed authentication attempts, try later
		CLOSED`)
	dialFrom(t, ts.addr, "127.0.0.1").run(`
		S: 421 4.7.0 Too many failed authentication attempts, try later
		CLOSED`)
	// Other addresses are not affected.
	dialFrom(t, ts.addr, "127.0.0.2").run(expand(`
		S: 220 *
		EHLO laptop
		C: STARTTLS
		S: 220 *
		TLS
		EHLO laptop
		C: AUTH PLAIN $GOOD
		S: 235 *`, "$GOOD", plain("alice@example.org", alicePass)))
}

func TestTimeouts(t *testing.T) {
	t.Run("idle client", func(t *testing.T) {
		ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.ReadTimeout = 200 * time.Millisecond })
		dial(t, ts.addr).run(`
			S: 220 *
			EHLO client.example
			S: 421 4.4.2 mx.example.org Error: timeout exceeded
			CLOSED`)
	})
	t.Run("idle client over TLS", func(t *testing.T) {
		ts := startServer(t, smtpd.Submission, func(o *smtpd.Options) { o.ReadTimeout = 300 * time.Millisecond })
		dial(t, ts.addr).run(`
			S: 220 *
			EHLO laptop
			C: STARTTLS
			S: 220 *
			TLS
			EHLO laptop
			S: 421 4.4.2 mx.example.org Error: timeout exceeded
			CLOSED`)
	})
	t.Run("slow DATA", func(t *testing.T) {
		ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.DataTimeout = 300 * time.Millisecond })
		dial(t, ts.addr).run(`
			S: 220 *
			EHLO client.example
			C: MAIL FROM:<someone@remote.example>
			S: 250 *
			C: RCPT TO:<alice@example.org>
			S: 250 *
			C: DATA
			S: 354 *
			C: Subject: never finished
			S: 421 4.4.2 mx.example.org Error: timeout exceeded
			CLOSED`)
		if n := len(ts.mailbox(t, ts.alice, "INBOX")); n != 0 {
			t.Errorf("%d messages stored from an unfinished transfer", n)
		}
	})
}

func TestShutdownLetsTransactionsFinish(t *testing.T) {
	ts := startServer(t, smtpd.Submission, nil)
	auth := expand(`
		S: 220 *
		EHLO laptop
		C: STARTTLS
		S: 220 *
		TLS
		EHLO laptop
		C: AUTH PLAIN $GOOD
		S: 235 *`, "$GOOD", plain("alice@example.org", alicePass))
	busy := dial(t, ts.addr)
	busy.run(auth + `
		C: MAIL FROM:<alice@example.org>
		S: 250 *
		C: RCPT TO:<bob@example.org>
		S: 250 *
		C: DATA
		S: 354 *
		C: From: alice@example.org
		C:
		C: first half`)
	idle := dial(t, ts.addr)
	idle.run(auth)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	// The idle session is told at once, through its TLS layer.
	idle.run(`
		S: 421 4.3.2 Service shutting down
		CLOSED`)
	// No new connections.
	if c, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 100)
		n, _ := c.Read(b)
		c.Close()
		if n > 0 && !strings.HasPrefix(string(b[:n]), "421 ") {
			t.Errorf("new connection during shutdown greeted with %q", b[:n])
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a transaction was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	busy.run(`
		C: second half
		C: .
		S: 250 2.0.0 Ok: queued as *
		S: 421 4.3.2 Service shutting down
		CLOSED`)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-ts.done; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	msgs := ts.mailbox(t, ts.bob, "INBOX")
	if len(msgs) != 1 || !strings.HasSuffix(ts.body(t, msgs[0]), "first half\r\nsecond half\r\n") {
		t.Fatalf("bob's INBOX: %+v", msgs)
	}
}

func TestShutdownDeadline(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	c := dial(t, ts.addr)
	c.run(`
		S: 220 *
		EHLO client.example
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
		C: DATA
		S: 354 *
		C: Subject: too slow`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	c.run(`
		S: 421 4.3.2 Service shutting down
		CLOSED`)
	if n := len(ts.mailbox(t, ts.alice, "INBOX")); n != 0 {
		t.Errorf("%d messages stored from a cut transaction", n)
	}
}

func TestMetrics(t *testing.T) {
	m := metrics.New()
	ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.Metrics = m; o.MaxConnections = 1 })
	c := dial(t, ts.addr)
	c.run(`
		S: 220 *
		EHLO client.example
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<nobody@example.org>
		S: 550 *
		C: RCPT TO:<alice@example.org>
		S: 250 *
		C: DATA
		S: 354 *
		C: Subject: counted
		C:
		C: .
		S: 250 *`)
	dial(t, ts.addr).run("S: 421 *\nCLOSED")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`coibox_messages_received_total{listener="mx"} 1`,
		`coibox_deliveries_total{destination="local"} 1`,
		`coibox_messages_rejected_total{listener="mx",reason="unknown_user"} 1`,
		`coibox_smtp_sessions{listener="mx"} 1`,
		`coibox_smtp_sessions_total{listener="mx"} 1`,
		`coibox_connections_refused_total{listener="mx",reason="limit"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
