package smtpd_test

import (
	"bytes"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coibox/coibox/metrics"
	"github.com/coibox/coibox/smtpd"
)

// TestSilentConnectionsGiveWay: sockets that never say anything (here on 465, where
// they never send a ClientHello) hold connection slots only until someone needs one;
// clients that said EHLO are never pushed out.
func TestSilentConnectionsGiveWay(t *testing.T) {
	slots := smtpd.NewSlots(2, 20)
	m := metrics.New()
	tls465 := startServer(t, smtpd.Submissions, func(o *smtpd.Options) {
		o.Slots, o.Metrics, o.TLSHandshakeTimeout = slots, m, time.Minute
	})
	mx := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.Slots = slots })

	var silent []net.Conn
	for range 2 {
		nc, err := net.DialTimeout("tcp", tls465.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		silent = append(silent, nc)
	}
	waitMetric(t, m, `coibox_smtp_sessions{listener="submissions"} 2`)

	// Both slots are held by silence; port 25 still greets, twice.
	dial(t, mx.addr).run("S: 220 *\nEHLO one.example")
	dial(t, mx.addr).run("S: 220 *\nEHLO two.example")
	for i, nc := range silent {
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := nc.Read(make([]byte, 1)); err == nil {
			t.Errorf("silent socket %d: read %d bytes, want it closed", i, n)
		} else if isTimeout(err) {
			t.Errorf("silent socket %d still open", i)
		}
	}
	// Now every slot is held by a client that spoke: the next one is refused.
	dial(t, mx.addr).run(`
		S: 421 4.7.0 Too many connections, try again later
		CLOSED`)
}

// waitMetric waits until the metrics show line, e.g. a count of open sessions.
func waitMetric(t *testing.T, m *metrics.Metrics, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSilentClientGetsReply: a plain-text client evicted before its EHLO hears why.
func TestSilentClientGetsReply(t *testing.T) {
	ts := startServer(t, smtpd.MX, func(o *smtpd.Options) { o.MaxConnections = 1 })
	first := dialFrom(t, ts.addr, "127.0.0.1")
	first.expect("220 *")
	dialFrom(t, ts.addr, "127.0.0.2").run("S: 220 *\nEHLO late.example")
	first.run(`
		S: 421 4.7.0 Too many connections, try again later
		CLOSED`)
}

func TestTLSHandshakeDeadline(t *testing.T) {
	const hs = 300 * time.Millisecond
	// Each case must see the connection closed well before the command timeout.
	opts := func(o *smtpd.Options) { o.TLSHandshakeTimeout = hs; o.ReadTimeout = time.Minute }
	closedWithin := func(t *testing.T, nc net.Conn, min, max time.Duration) {
		t.Helper()
		start := time.Now()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		for {
			_, err := nc.Read(buf)
			if err == nil {
				continue // e.g. a TLS alert
			}
			if isTimeout(err) {
				t.Fatalf("connection still open after %v", time.Since(start))
			}
			break
		}
		if d := time.Since(start); d < min || d > max {
			t.Errorf("closed after %v, want between %v and %v", d, min, max)
		}
	}
	t.Run("465 without ClientHello", func(t *testing.T) {
		ts := startServer(t, smtpd.Submissions, opts)
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		closedWithin(t, nc, hs/2, hs+2*time.Second)
	})
	t.Run("465 with half a ClientHello", func(t *testing.T) {
		ts := startServer(t, smtpd.Submissions, opts)
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// A TLS record header announcing 512 bytes, then nothing.
		if _, err := nc.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, nc, hs/2, hs+2*time.Second)
	})
	t.Run("STARTTLS without ClientHello", func(t *testing.T) {
		ts := startServer(t, smtpd.Submission, opts)
		c := dial(t, ts.addr)
		c.run("S: 220 *\nEHLO laptop\nC: STARTTLS\nS: 220 2.0.0 Ready to start TLS")
		// No plain-text 421 may follow: the client is expected to be in its handshake.
		closedWithin(t, c.conn, hs/2, hs+2*time.Second)
	})
	t.Run("after the handshake the command timeout applies", func(t *testing.T) {
		ts := startServer(t, smtpd.Submission, opts)
		c := dial(t, ts.addr)
		c.run("S: 220 *\nEHLO laptop\nC: STARTTLS\nS: 220 *\nTLS")
		time.Sleep(3 * hs)
		c.run("EHLO laptop\nC: NOOP\nS: 250 *")
	})
	t.Run("465 handshake done, EHLO after the handshake deadline", func(t *testing.T) {
		ts := startServer(t, smtpd.Submissions, opts)
		c := dialTLS(t, ts.addr)
		c.expect("220 *")
		time.Sleep(3 * hs)
		c.run("EHLO laptop\nC: NOOP\nS: 250 *")
	})
}

func TestEnvelopeSyntax(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	local64 := strings.Repeat("a", 64)
	domain := func(n int) string { // a name of n octets, labels of 59
		d := []byte(strings.Repeat(strings.Repeat("d", 59)+".", 5)[:n-len(".example")])
		if d[len(d)-1] == '.' {
			d[len(d)-1] = 'd'
		}
		return string(d) + ".example"
	}
	long254 := local64 + "@" + domain(254-65)
	tests := []struct{ name, mail, rcpt, want string }{
		{"NUL in sender", "<a\x00b@remote.example>", "", "501 5.1.7 Bad sender address syntax: the address contains a NUL byte"},
		{"control character in sender", "<a\x01b@remote.example>", "", "501 5.1.7 Bad sender address syntax: the address contains a control character"},
		{"DEL in sender domain", "<ab@remote\x7f.example>", "", "501 5.1.7 * control character"},
		{"invalid UTF-8 sender", "<a\xffb@remote.example>", "", "501 5.1.7 Bad sender address syntax: the address is not valid UTF-8"},
		{"invalid UTF-8 sender with SMTPUTF8", "<a\xc3@remote.example> SMTPUTF8", "", "501 5.1.7 * is not valid UTF-8"},
		{"sender local part of 65", "<" + local64 + "b@remote.example>", "", "501 5.1.7 Bad sender address syntax: the address has a local part longer than 64 octets (RFC 5321 section 4.5.3.1)"},
		{"sender path of 257", "<b" + long254 + ">", "", "501 5.1.7 Bad sender address syntax: the address is longer than 254 octets (RFC 5321 section 4.5.3.1)"},
		{"sender at the limits", "<" + long254 + ">", "", "250 *"},
		{"UTF-8 sender with SMTPUTF8", "<jörg@remote.example> SMTPUTF8", "", "250 *"},
		{"UTF-8 sender without SMTPUTF8", "<jörg@remote.example>", "", "553 5.6.7 Non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM (RFC 6531)"},
		{"UTF-8 domain without SMTPUTF8", "<0@ұ>", "", "553 5.6.7 *"},
		{"NUL in recipient", "", "<al\x00ice@example.org>", "553 5.1.3 Bad recipient address syntax: the address contains a NUL byte"},
		{"tab in recipient domain", "", "<alice@exam\x0bple.org>", "553 5.1.3 Bad recipient address syntax: the address contains a control character"},
		{"invalid UTF-8 recipient", "", "<alice@example.org\xfe>", "553 5.1.3 Bad recipient address syntax: the address is not valid UTF-8"},
		{"recipient local part of 65", "", "<" + local64 + "b@example.org>", "553 5.1.3 * local part longer than 64 octets *"},
		{"recipient path of 257", "", "<b" + long254 + ">", "553 5.1.3 * longer than 254 octets *"},
		{"UTF-8 recipient without SMTPUTF8", "", "<jörg@example.org>", "553 5.6.7 Non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM (RFC 6531)"},
		{"recipient local part of 64", "", "<" + local64 + "@example.org>", "550 5.1.1 * User unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.run("S: 220 *\nEHLO client.example")
			if tc.mail != "" {
				c.send("MAIL FROM:" + tc.mail + "\r\n")
				c.expect(tc.want)
				return
			}
			c.run("C: MAIL FROM:<someone@remote.example>\nS: 250 *")
			c.send("RCPT TO:" + tc.rcpt + "\r\n")
			c.expect(tc.want)
			// The transaction goes on.
			c.run("C: RCPT TO:<alice@example.org>\nS: 250 *")
		})
	}
}

func TestBareCR(t *testing.T) {
	ts := startServer(t, smtpd.MX, nil)
	tx := `
		S: 220 *
		EHLO client.example
		C: MAIL FROM:<someone@remote.example>
		S: 250 *
		C: RCPT TO:<alice@example.org>
		S: 250 *`
	t.Run("DATA", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.run(tx + "\nC: DATA\nS: 354 *")
		// "\r.\r" would end the data for a server taking a bare CR as a line end.
		c.send("Subject: smuggled\r\n\r\nhello\r.\rMAIL FROM:<x@example.org>\r\n.\r\n")
		c.run(`
			S: 550 5.6.0 Message refused: it contains a bare CR (carriage return without line feed), which RFC 5322 forbids
			C: NOOP
			S: 250 *`)
	})
	t.Run("BDAT ending in CR", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.run(tx)
		c.send("BDAT 19 LAST\r\nSubject: x\r\n\r\nbody\r")
		c.expect("550 5.6.0 *")
	})
	t.Run("bare LF is accepted (and stored as CRLF)", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.run(tx + "\nC: DATA\nS: 354 *")
		c.send("Subject: old script\r\n\r\nline\none\r\n.\r\n")
		c.expect("250 2.0.0 Ok: queued as *")
	})
	msgs := ts.mailbox(t, ts.alice, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("INBOX has %d messages, want only the one with a bare LF", len(msgs))
	}
	if body := ts.body(t, msgs[0]); !strings.HasSuffix(body, "line\r\none\r\n") {
		t.Errorf("stored %q", body)
	}
}

// syncBuffer is a log destination that tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuthFailureLogLine: the line fail2ban reads (contrib/fail2ban), with the address
// and account in fixed places and never the password.
func TestAuthFailureLogLine(t *testing.T) {
	var logs syncBuffer
	ts := startServer(t, smtpd.Submissions, func(o *smtpd.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil)).With("pkg", "smtpd")
	})
	const secret = "guessed-Secret-123"
	c := dialTLS(t, ts.addr)
	c.run(expand(`
		S: 220 *
		EHLO laptop
		C: AUTH PLAIN $BAD
		S: 535 5.7.8 *
		C: AUTH PLAIN $ODD
		S: 535 5.7.8 *`, "$BAD", plain("alice@example.org", secret), "$ODD", plain("x remote=192.0.2.9", secret)))
	out := logs.String()
	re := regexp.MustCompile(`(?m)^time=\S+ level=WARN msg="authentication failed" pkg=smtpd listener=submissions protocol=smtp remote=127\.0\.0\.1 account=(\S+|"[^"]*") session=\S+ delay=\S+$`)
	got := re.FindAllStringSubmatch(out, -1)
	if len(got) != 2 || got[0][1] != "alice@example.org" || got[1][1] != `"x remote=192.0.2.9"` {
		t.Errorf("authentication failure lines: %q\nlog:\n%s", got, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the password is in the log:\n%s", out)
	}
}
