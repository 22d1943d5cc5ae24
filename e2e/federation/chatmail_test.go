package federation

import (
	"bytes"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// chatPeer is a peer whose domain is a chatmail domain: accounts appear at their
// first login, and the embedded TURN server stays off (it would take port 3478).
func chatPeer(t *testing.T, c *cluster, ip, domain string, config string) *peer {
	t.Helper()
	p := newPeer(t, c, ip, domain, nil)
	f, err := os.OpenFile(p.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n[chat]\nturn_listen = \"\"\n" + config); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// newPeer served the domain as an ordinary one (its DKIM keys and records stay).
	p.mustAdmin(t, "", "domain", "del", domain)
	p.mustAdmin(t, "", "domain", "add", "--chatmail", domain)
	p.mustAdmin(t, "", "domain", "set", domain, "localpart_len=3..20", "resource_guard=off")
	return p
}

// TestChatmailFederation: two chatmail hosts exchange encrypted mail over HTTPS
// /mxdeliv (8), the copy arrives without DKIM-Signature, Authentication-Results or
// Received (20) and without the sender's address (22); with /mxdeliv turned off at
// the receiver the sender falls back to SMTP on the same host; mail to an unknown
// user comes back to the sender as a bounce naming the address (12).
func TestChatmailFederation(t *testing.T) {
	c := newCluster(t)
	if !c.https {
		t.Skip("port 443 cannot be bound here: /mxdeliv lives there")
	}
	a := chatPeer(t, c, ipA, "a.chat.test", "")
	b := chatPeer(t, c, ipB, "b.chat.test", "")
	a.start(t)
	b.start(t)
	alice, bob := "alice@a.chat.test", "bob@b.chat.test"
	a.passwords[alice], b.passwords[bob] = "alice-password-1", "bob-password-1"
	// First logins make the accounts.
	a.inbox(t, alice)
	b.inbox(t, bob)

	send := func(t *testing.T, to string) []byte {
		t.Helper()
		msg := testutil.EncryptedMessage(t, alice, to, "[...]")
		if r := a.submit(t, alice, []string{to}, msg); r.Code != 250 {
			t.Fatalf("submission to %s: %v", to, r)
		}
		return msg
	}
	arrived := func(t *testing.T) []byte {
		t.Helper()
		return b.waitFor(t, bob, 30*time.Second, "message from alice", func(m *mail.Message, _ []byte) bool {
			return strings.Contains(m.Header.Get("From"), alice)
		})
	}

	t.Run("over /mxdeliv", func(t *testing.T) {
		send(t, bob)
		raw := arrived(t)
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"DKIM-Signature", "Authentication-Results", "Received", "X-Mailer"} {
			if v := m.Header.Get(f); v != "" {
				t.Errorf("bob's copy has %s: %q", f, v)
			}
		}
		if m.Header.Get("Subject") != "[...]" {
			t.Errorf("Subject %q", m.Header.Get("Subject"))
		}
		if bytes.Contains(raw, []byte(ipA)) {
			t.Errorf("bob's copy names the sending host's address %s", ipA)
		}
		if out := b.proc.Output(); !strings.Contains(out, "mxdeliv: delivered") {
			t.Errorf("b's log shows no delivery over /mxdeliv:\n%s", testutil.Tail(out, 30))
		}
	})

	t.Run("unknown user bounces", func(t *testing.T) {
		send(t, "nobody@b.chat.test")
		dsn := a.waitFor(t, alice, 60*time.Second, "bounce", func(m *mail.Message, raw []byte) bool {
			return strings.HasPrefix(strings.ToLower(m.Header.Get("Content-Type")), "multipart/report")
		})
		if !bytes.Contains(dsn, []byte("nobody@b.chat.test")) {
			t.Errorf("bounce does not name the address:\n%s", dsn)
		}
	})

	t.Run("a remote bounce is accepted", func(t *testing.T) {
		// b forwards to a domain that does not exist, so b's queue bounces to alice:
		// a mailer-daemon report, DKIM-signed by b's hostname, which a's chatmail
		// rules must accept (24).
		b.mustAdmin(t, "", "alias", "add", "fwd@b.chat.test", "nobody@nonexistent.invalid")
		send(t, "fwd@b.chat.test")
		dsn := a.waitFor(t, alice, 60*time.Second, "bounce from b", func(m *mail.Message, raw []byte) bool {
			return strings.Contains(strings.ToLower(m.Header.Get("From")), "mx.b.chat.test") &&
				strings.HasPrefix(strings.ToLower(m.Header.Get("Content-Type")), "multipart/report")
		})
		if !bytes.Contains(dsn, []byte("nobody@nonexistent.invalid")) {
			t.Errorf("b's bounce does not name the address:\n%s", dsn)
		}
	})

	t.Run("SMTP fallback", func(t *testing.T) {
		b.stop(t)
		f, err := os.OpenFile(b.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("mxdeliv_inbound = false\n") // still inside [chat]
		f.Close()
		b.start(t)
		before := len(b.inbox(t, bob))
		send(t, bob)
		deadline := time.Now().Add(30 * time.Second)
		for len(b.inbox(t, bob)) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no message over SMTP within 30 s; a's log:\n%s", testutil.Tail(a.proc.Output(), 40))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if out := b.proc.Output(); strings.Contains(out, "mxdeliv: delivered") || !strings.Contains(out, "listener=mx ") {
			t.Errorf("b took the message other than over port 25:\n%s", testutil.Tail(out, 30))
		}
	})
}
