package e2e

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSubmissionPythonSmtplib submits a message the way a desktop client does (Python's
// smtplib: EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA on the submission port) and
// checks that it lands once in the recipient's INBOX with a Received field added, as
// read from the store and as the recipient's IMAP client fetches it.
func TestSubmissionPythonSmtplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (CI installs it); skipping the smtplib submission test")
	}
	s := startServer(t, options{users: []string{"alice", "bob"}})
	host, port, err := net.SplitHostPort(s.addr.Submission)
	if err != nil {
		t.Fatal(err)
	}
	const msgID = "smtplib-1@client.e2e.test"
	alice, bob := "alice@"+domain, "bob@"+domain

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/submit.py", host, port, alice, s.passwords[alice], alice, bob, msgID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("submit.py: %v\n%s", err, out)
	}
	for _, want := range []string{"STARTTLS 220", "AUTH 235", "SENT " + msgID} {
		if !strings.Contains(string(out), want) {
			t.Errorf("submit.py output lacks %q:\n%s", want, out)
		}
	}

	msgs := s.inbox(t, bob)
	if n := countByMessageID(msgs)["<"+msgID+">"]; n != 1 {
		t.Fatalf("bob's INBOX holds the message %d times, want 1 (%d messages in all)", n, len(msgs))
	}
	for _, m := range msgs {
		rcvd := m.header["Received"]
		if len(rcvd) == 0 {
			t.Fatalf("stored message has no Received field:\n%s", m.body)
		}
		// The newest Received field is first; it is the one this server added.
		if !strings.Contains(rcvd[0], "localhost") {
			t.Errorf("Received field %q does not name the server (localhost)", rcvd[0])
		}
		if got := m.header.Get("Subject"); got != "e2e smtplib" {
			t.Errorf("Subject = %q, want %q", got, "e2e smtplib")
		}
	}
	fetched := s.imapFetch(t, bob, "<"+msgID+">")
	if len(fetched) != 1 {
		t.Fatalf("IMAP SEARCH for the Message-ID found %d messages, want 1", len(fetched))
	}
	for _, want := range []string{"Received: ", "Sent by Python smtplib"} {
		if !strings.Contains(string(fetched[0]), want) {
			t.Errorf("message fetched over IMAP lacks %q:\n%s", want, fetched[0])
		}
	}
	if msgs := s.inbox(t, alice); len(msgs) != 0 {
		t.Errorf("alice's INBOX holds %d messages, want 0 (she only sent)", len(msgs))
	}
}
