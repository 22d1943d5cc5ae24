package e2e

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// TestGracefulShutdown sends SIGTERM while a transaction is in progress and checks
// that the server finishes it properly: the client gets 250 (message stored once,
// whole) or a clean 421 (message not stored); new connections are no longer served; an
// idle connection does not hold the shutdown for the whole grace period; the process
// exits 0 and the store is consistent.
func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name string
		// before runs the transaction up to the point where SIGTERM arrives and returns
		// the rest of it.
		before func(t *testing.T, c *testutil.SMTPClient, msg []byte) (rest func() (testutil.SMTPReply, error))
	}{
		{
			name: "during DATA",
			before: func(t *testing.T, c *testutil.SMTPClient, msg []byte) func() (testutil.SMTPReply, error) {
				for _, cmd := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@" + domain + ">"} {
					mustReply(t, c, 250, cmd)
				}
				mustReply(t, c, 354, "DATA")
				half := len(msg) / 2
				if _, err := c.Conn().Write(msg[:half]); err != nil {
					t.Fatalf("send first half: %v", err)
				}
				return func() (testutil.SMTPReply, error) {
					if _, err := c.Conn().Write(append(msg[half:], ".\r\n"...)); err != nil {
						return testutil.SMTPReply{}, err
					}
					return c.ReadReply()
				}
			},
		},
		{
			name: "between RCPT and DATA",
			before: func(t *testing.T, c *testutil.SMTPClient, msg []byte) func() (testutil.SMTPReply, error) {
				for _, cmd := range []string{"MAIL FROM:<sender@example.org>", "RCPT TO:<alice@" + domain + ">"} {
					mustReply(t, c, 250, cmd)
				}
				return func() (testutil.SMTPReply, error) { return c.Data(msg) }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, options{users: []string{"alice"}})
			ctx := t.Context()
			const msgID = "<shutdown@client.e2e.test>"
			msg := newMessage("sender@example.org", "alice@"+domain, "shutdown@client.e2e.test", 50_000)
			msg = append(msg, "END-OF-MESSAGE\r\n"...)

			busy := dial(t, s.addr.SMTP, "127.0.4.1")
			idle := dial(t, s.addr.SMTP, "127.0.4.2")
			rest := tc.before(t, busy, msg)

			sigterm := time.Now()
			if err := s.proc.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // let the server begin its shutdown

			// A new connection is refused, or greeted with 421.
			if c, greet, err := testutil.DialSMTP(ctx, s.addr.SMTP, testutil.SMTPDialOptions{LocalIP: "127.0.4.3", Timeout: 5 * time.Second}); err == nil {
				if greet.Code != 421 {
					t.Errorf("new connection after SIGTERM greeted with %q, want refusal or 421", greet)
				}
				c.Close()
			}

			r, err := rest()
			if err != nil {
				t.Fatalf("finish the transaction after SIGTERM: %v (server output:\n%s)", err, testutil.Tail(s.proc.Output(), 40))
			}
			if r.Code != 250 && r.Code != 421 {
				t.Errorf("transaction in progress at SIGTERM answered %q, want 250 or 421", r)
			}

			// The idle connection is told to go (421) or just closed; either way it
			// ends well before the grace period would.
			_ = idle.Conn().SetReadDeadline(time.Now().Add(15 * time.Second))
			ir, err := idle.ReadReply()
			switch {
			case err == nil && ir.Code != 421:
				t.Errorf("idle connection got %q at shutdown, want 421 or a close", ir)
			case err != nil && !errors.Is(err, io.EOF) && !isReset(err):
				t.Errorf("idle connection at shutdown: %v, want 421 or a close", err)
			}

			code, err := s.proc.Wait(stopGrace)
			if err != nil {
				t.Fatalf("%v\n%s", err, testutil.Tail(s.proc.Output(), 40))
			}
			took := time.Since(sigterm)
			if code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, testutil.Tail(s.proc.Output(), 40))
			}
			if took > 8*time.Second {
				t.Errorf("server took %v to exit after SIGTERM with nothing left to do, want well under its 10s grace", took.Round(time.Millisecond))
			}
			t.Logf("reply %q; exited %v after SIGTERM", r, took.Round(time.Millisecond))

			msgs := s.inbox(t, "alice@"+domain)
			n := countByMessageID(msgs)[msgID]
			switch {
			case r.Code == 250 && n != 1:
				t.Errorf("acknowledged message stored %d times, want 1", n)
			case r.Code == 421 && n != 0:
				t.Errorf("message refused with 421 stored %d times, want 0", n)
			}
			for _, m := range msgs {
				if !bytes.Contains(m.body, []byte("END-OF-MESSAGE")) {
					t.Errorf("stored message UID %d is truncated (%d bytes)", m.uid, len(m.body))
				}
			}
			s.verify(t)
		})
	}
}

// dial opens an SMTP session from localIP and says EHLO.
func dial(t *testing.T, addr, localIP string) *testutil.SMTPClient {
	t.Helper()
	c, greet, err := testutil.DialSMTP(t.Context(), addr, testutil.SMTPDialOptions{LocalIP: localIP, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if greet.Code != 220 {
		t.Fatalf("greeting %q, want 220", greet)
	}
	mustReply(t, c, 250, "EHLO client.e2e.test")
	return c
}

// mustReply sends cmd and fails the test unless the reply has the code want.
func mustReply(t *testing.T, c *testutil.SMTPClient, want int, cmd string) testutil.SMTPReply {
	t.Helper()
	r, err := c.Cmd("%s", cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if r.Code != want {
		t.Fatalf("%s: reply %q, want %d", cmd, r, want)
	}
	return r
}

// isReset reports whether err is the peer resetting the connection, which is how a
// closed socket with unread data shows up.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
