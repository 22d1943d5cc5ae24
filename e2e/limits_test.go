package e2e

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// TestLimits checks the SMTP limits on a server configured with small ones. Each
// subtest connects from its own loopback address, so per-IP counters never mix.
func TestLimits(t *testing.T) {
	const idleTimeout = 2 * time.Second
	s := startServer(t, options{
		users: []string{"alice", "bob", "carol", "dave"},
		limits: `recipients = 3
smtp_connections_per_ip = 3
smtp_command_timeout = "2s"
auth_failures_per_ip = 3`,
	})
	alice := "alice@" + domain

	t.Run("too many recipients", func(t *testing.T) {
		c := dial(t, s.addr.SMTP, "127.0.5.1")
		mustReply(t, c, 250, "MAIL FROM:<sender@example.org>")
		for _, u := range []string{"alice", "bob", "carol"} {
			mustReply(t, c, 250, "RCPT TO:<"+u+"@"+domain+">")
		}
		r := mustReply(t, c, 452, "RCPT TO:<dave@"+domain+">")
		if !strings.HasPrefix(r.String(), "452 4.5.3 ") {
			t.Errorf("fourth recipient: %q, want 452 4.5.3", r)
		}
		// The transaction goes on with the recipients accepted so far.
		r, err := c.Data(newMessage("sender@example.org", alice, "rcpts@client.e2e.test", 500))
		if err != nil || r.Code != 250 {
			t.Fatalf("DATA after the refused recipient: %q, %v; want 250", r, err)
		}
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			want := 1
			if u == "dave" {
				want = 0
			}
			if n := countByMessageID(s.inbox(t, u+"@"+domain))["<rcpts@client.e2e.test>"]; n != want {
				t.Errorf("%s got the message %d times, want %d", u, n, want)
			}
		}
	})

	t.Run("too many connections from one IP", func(t *testing.T) {
		const ip = "127.0.5.2"
		var open []*testutil.SMTPClient
		for range 3 {
			open = append(open, dial(t, s.addr.SMTP, ip))
		}
		if code := greeting(t, s.addr.SMTP, ip); code != 421 {
			t.Errorf("fourth connection from %s greeted with %d, want 421", ip, code)
		}
		if code := greeting(t, s.addr.SMTP, "127.0.5.3"); code != 220 {
			t.Errorf("connection from another address greeted with %d, want 220", code)
		}
		// The limit counts connections at once: closing one makes room again.
		if err := open[0].Quit(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			code := greeting(t, s.addr.SMTP, ip)
			if code == 220 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after one connection closed, a new one is still greeted with %d, want 220", code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("idle client times out", func(t *testing.T) {
		c := dial(t, s.addr.SMTP, "127.0.5.4")
		start := time.Now()
		_ = c.Conn().SetReadDeadline(time.Now().Add(idleTimeout + 10*time.Second))
		r, err := c.ReadReply()
		waited := time.Since(start)
		if err != nil {
			t.Fatalf("idle connection: %v after %v, want a 421 reply", err, waited.Round(time.Millisecond))
		}
		if !strings.HasPrefix(r.String(), "421 4.4.2 ") {
			t.Errorf("idle connection got %q, want 421 4.4.2", r)
		}
		if waited < idleTimeout-200*time.Millisecond || waited > idleTimeout+5*time.Second {
			t.Errorf("idle connection closed after %v, want about %v", waited.Round(time.Millisecond), idleTimeout)
		}
		if _, err := c.ReadReply(); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("after the 421 the connection should be closed, got %v", err)
		}
	})

	t.Run("AUTH lockout per IP", func(t *testing.T) {
		const ip = "127.0.5.5"
		c := dialSubmission(t, s.addr.Submission, ip)
		// The failures are delayed 1s, 2s, 3s by the server (authlimit).
		for i := range 3 {
			r, err := c.AuthPlain(alice, "wrong password")
			if err != nil {
				t.Fatalf("failed AUTH %d: %v", i+1, err)
			}
			if r.Code != 535 {
				t.Errorf("failed AUTH %d: %q, want 535", i+1, r)
			}
		}
		// Locked out: even the right password is refused, on this connection and a new one.
		r, err := c.AuthPlain(alice, s.passwords[alice])
		if err == nil && r.Code == 235 {
			t.Errorf("right password after 3 failures accepted on the same connection, want a lockout")
		}
		// A new connection from the address is refused at the greeting, or at AUTH.
		c2, greet, err := testutil.DialSMTP(t.Context(), s.addr.Submission, testutil.SMTPDialOptions{LocalIP: ip, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		switch greet.Code {
		case 421:
		case 220:
			mustReply(t, c2, 250, "EHLO client.e2e.test")
			if r, err := c2.StartTLS(clientTLS()); err != nil || r.Code != 220 {
				t.Fatalf("STARTTLS: %q, %v", r, err)
			}
			mustReply(t, c2, 250, "EHLO client.e2e.test")
			r, err := c2.AuthPlain(alice, s.passwords[alice])
			switch {
			case err != nil:
				t.Logf("AUTH on a new connection: %v (closed: counts as refused)", err)
			case r.Code/100 == 2:
				t.Errorf("right password from the locked-out address on a new connection: %q, want a refusal", r)
			case r.Code != 421 && r.Code != 454 && r.Code != 535:
				t.Errorf("locked-out AUTH answered %q, want 421, 454 or 535", r)
			}
		default:
			t.Errorf("new connection from the locked-out address greeted with %q, want 421 or 220", greet)
		}
		// The lockout is per address, not per account.
		c3 := dialSubmission(t, s.addr.Submission, "127.0.5.6")
		if r, err := c3.AuthPlain(alice, s.passwords[alice]); err != nil || r.Code != 235 {
			t.Errorf("AUTH from another address: %q, %v; want 235", r, err)
		}
	})
}

// greeting connects from localIP and returns the greeting's code, or 0 if the server
// closed the connection without one.
func greeting(t *testing.T, addr, localIP string) int {
	t.Helper()
	c, greet, err := testutil.DialSMTP(t.Context(), addr, testutil.SMTPDialOptions{LocalIP: localIP, Timeout: 10 * time.Second})
	if err != nil {
		t.Logf("connect from %s: %v", localIP, err)
		return 0
	}
	defer c.Close()
	return greet.Code
}

// dialSubmission opens a submission session from localIP up to the point of AUTH:
// EHLO, STARTTLS, EHLO.
func dialSubmission(t *testing.T, addr, localIP string) *testutil.SMTPClient {
	t.Helper()
	c := dial(t, addr, localIP)
	r, err := c.StartTLS(clientTLS())
	if err != nil || r.Code != 220 {
		t.Fatalf("STARTTLS: %q, %v", r, err)
	}
	mustReply(t, c, 250, "EHLO client.e2e.test")
	return c
}
