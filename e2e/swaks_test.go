package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSwaks drives the MX and submission listeners with swaks, the SMTP test tool mail
// administrators use, and checks the replies it prints (`<** 550 5.1.1 …` for a
// refusal in clear text, `<~* …` for one inside TLS) and what reached the store.
func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Fatal("swaks is not installed; install it (apt-get install swaks): these tests need it")
	}
	// Debian's swaks only recommends the Perl TLS module, so an install without
	// recommends cannot do STARTTLS; say so rather than fail on a confusing exit code.
	if support, _ := exec.Command(swaks, "--support").CombinedOutput(); !strings.Contains(string(support), "=== TLS supported") {
		t.Fatalf("swaks has no TLS support: install libnet-ssleay-perl\n%s", support)
	}
	s := startServer(t, options{
		users:  []string{"alice", "bob"},
		limits: `message_size = "64KB"`,
	})
	alice, bob := "alice@"+domain, "bob@"+domain
	big := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("This line makes the message larger than the limit.\r\n", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	submit := []string{"--server", s.addr.Submission, "--tls", "--auth", "PLAIN", "--auth-user", alice, "--auth-password", s.passwords[alice]}
	mx := []string{"--server", s.addr.SMTP}

	tests := []struct {
		name     string
		args     []string
		wantLine string // regexp a line of swaks' output must match
		wantCode int    // swaks' exit code
	}{
		{
			name:     "MX delivery to a local user",
			args:     with(mx, "--from", "sender@example.org", "--to", alice, "--header", "Message-Id: <swaks-mx@example.org>"),
			wantLine: `^<-  250 `,
			wantCode: 0,
		},
		{
			name:     "MX relay to a remote domain is denied",
			args:     with(mx, "--from", "sender@example.org", "--to", "someone@example.net"),
			wantLine: `^<\*\* 550 5\.7\.1 `,
			wantCode: 24, // no recipient accepted
		},
		{
			name:     "MX unknown local user",
			args:     with(mx, "--from", "sender@example.org", "--to", "nobody@"+domain),
			wantLine: `^<\*\* 550 5\.1\.1 `,
			wantCode: 24,
		},
		{
			name:     "MX message over the size limit",
			args:     with(mx, "--from", "sender@example.org", "--to", alice, "--body", "@"+big),
			wantLine: `^<\*\* 552 5\.3\.4 `,
			wantCode: 26, // refused after the message data
		},
		{
			name:     "submission with AUTH delivers",
			args:     with(submit, "--from", alice, "--to", bob, "--header", "Message-Id: <swaks-sub@e2e.test>"),
			wantLine: `^<~  250 `,
			wantCode: 0,
		},
		{
			name:     "submission without AUTH is refused",
			args:     []string{"--server", s.addr.Submission, "--tls", "--from", alice, "--to", bob},
			wantLine: `^<~\* 530 5\.7\.0 `,
			wantCode: 23,
		},
		{
			name:     "submission with an envelope sender the account does not own",
			args:     with(submit, "--from", bob, "--to", bob),
			wantLine: `^<~\* 553 5\.7\.1 `,
			wantCode: 24, // refused at RCPT, where Postfix's sender restrictions act too
		},
		{
			name:     "submission with a From field the account does not own",
			args:     with(submit, "--from", alice, "--to", bob, "--header", "From: <"+bob+">"),
			wantLine: `^<~\* 550 5\.7\.1 `,
			wantCode: 26,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			args := append([]string{"--timeout", "30", "--helo", "client.e2e.test"}, tc.args...)
			out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run swaks: %v", err)
			}
			re := regexp.MustCompile(`(?m)` + tc.wantLine)
			if !re.Match(out) {
				t.Errorf("no line of swaks' output matches %s:\n%s", tc.wantLine, out)
			}
			if code != tc.wantCode {
				t.Errorf("swaks exit code %d, want %d:\n%s", code, tc.wantCode, out)
			}
		})
	}

	// Only the two accepted messages reached the store, once each: no refusal left a
	// message behind.
	for _, c := range []struct {
		rcpt, msgID string
	}{
		{alice, "<swaks-mx@example.org>"},
		{bob, "<swaks-sub@e2e.test>"},
	} {
		msgs := s.inbox(t, c.rcpt)
		n := countByMessageID(msgs)
		if len(msgs) != 1 || n[c.msgID] != 1 {
			t.Errorf("INBOX of %s holds %d messages %v, want exactly %s once", c.rcpt, len(msgs), n, c.msgID)
			continue
		}
		if len(msgs[0].header["Received"]) == 0 {
			t.Errorf("message to %s has no Received field", c.rcpt)
		}
	}
}

// with returns base followed by more, in a new slice, so that table rows built on the
// same base never share an array.
func with(base []string, more ...string) []string { return slices.Concat(base, more) }
