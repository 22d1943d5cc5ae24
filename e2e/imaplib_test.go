package e2e

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/testutil"
)

// TestIMAPPythonImaplib reads mail from the built binary with Python's imaplib over
// the STARTTLS port: LOGIN refused before TLS (LOGINDISABLED), then STARTTLS, LOGIN,
// LIST, SELECT, UID SEARCH by header, UID FETCH (which sets \Seen), UID STORE, UID
// MOVE to Archive, STATUS and a SEARCH in Archive: a desktop client's everyday calls.
func TestIMAPPythonImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (CI installs it); skipping the imaplib test")
	}
	s := startServer(t, options{users: []string{"bob"}})
	bob := "bob@" + domain
	const msgID = "<imaplib-1@client.e2e.test>"

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, _, err := testutil.DialSMTP(ctx, s.addr.SMTP, testutil.SMTPDialOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := cl.Hello("peer.e2e.test"); err != nil || r.Code != 250 {
		t.Fatalf("EHLO: %v %v", r, err)
	}
	if r, err := cl.Send("sender@example.org", []string{bob}, newMessage("sender@example.org", bob, strings.Trim(msgID, "<>"), 2048)); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}

	host, port, err := net.SplitHostPort(s.addr.IMAP)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, python, "testdata/imap_session.py", host, port, bob, s.passwords[bob], msgID).CombinedOutput()
	if err != nil {
		t.Fatalf("imap_session.py: %v\n%s", err, out)
	}
	for _, want := range []string{
		"LOGINDISABLED",
		"LOGIN-BEFORE-TLS refused",
		"STARTTLS OK",
		"LOGIN OK",
		"MAILBOXES Archive Drafts INBOX Junk Sent Trash",
		"FOUND 1",
		"SUBJECT Subject: e2e imaplib-1@client.e2e.test",
		"has-received",
		`FLAGS-AFTER-READ 1 (UID 1 FLAGS (\Seen))`,
		"MOVE OK",
		"INBOX-STATUS INBOX (MESSAGES 0)",
		"ARCHIVE-FLAGGED-SEEN 1",
		"LOGOUT OK",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib session lacks %q:\n%s", want, out)
		}
	}
}
