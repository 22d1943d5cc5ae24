package e2ee

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

const reply523 = "523 Encryption Needed: Invalid Unencrypted Mail"

func plainText(from, to string) []byte {
	return crlf("From: <" + from + ">\nTo: <" + to + ">\nSubject: Unencrypted subject\nContent-Type: text/plain\n\nhello\n")
}

// setupMessage is an Autocrypt Setup Message (Autocrypt 1.1 4.4) as a client mails it
// to itself.
func setupMessage(addr, subject, contentType string) []byte {
	return crlf(`From: <` + addr + `>
To: <` + addr + `>
Subject: ` + subject + `
Autocrypt-Setup-Message: v1
MIME-Version: 1.0
Content-Type: ` + contentType + `; boundary="ASM"

--ASM
Content-Type: text/plain

This message contains all information to transfer your Autocrypt
settings along with your secret key securely from your original device.
--ASM
Content-Type: application/autocrypt-setup
Content-Disposition: attachment; filename="autocrypt-setup-message.html"

<html><body><pre>
-----BEGIN PGP MESSAGE-----
Passphrase-Format: numeric9x4
Passphrase-Begin: 17

wy4ECQMI0jNRBQfVKHVg1+a2Yihd6JAjR9H0kk3oDVeX7nc4Oi+IjEtonUJt
=k3t3
-----END PGP MESSAGE-----
</pre></body></html>
--ASM--
`)
}

// bounce is a delivery status notification as Postfix and coibox's queue/dsn write
// them.
func bounce(from, autoSubmitted, contentType string) []byte {
	s := "From: " + from + "\nTo: <bob@chat.example>\nSubject: Undelivered Mail Returned to Sender\n"
	if autoSubmitted != "-" {
		s += "Auto-Submitted: " + autoSubmitted + "\n"
	}
	return crlf(s + `MIME-Version: 1.0
Content-Type: ` + contentType + `; report-type=delivery-status; boundary="R"

This is a MIME-encapsulated message.

--R
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.relay.example
Final-Recipient: rfc822; nobody@relay.example
Action: failed
Status: 5.1.1
--R--
`)
}

func TestDecide(t *testing.T) {
	const alice, bob, carol = "alice@chat.example", "bob@relay.example", "carol@chat.example"
	enc := pgpMIME(armored(typical()))
	encHeaders := pgpMIME(armored(typical(), "Version: GnuPG v2"))
	sj := secureJoin("vc-request", "Secure-Join: vc-request")
	dsn := bounce("Mail Delivery System <MAILER-DAEMON@mx.relay.example>", "auto-replied", "multipart/report")
	asm := setupMessage(alice, "Autocrypt Setup Message", "multipart/mixed")

	remote := func(addr string) Recipient { return Recipient{Address: addr} }
	local := func(addr string, enforce bool) Recipient {
		return Recipient{Address: addr, Local: true, EnforceIncoming: enforce}
	}
	// chatmail is a submission from a chatmail account.
	chatmail := func(rcpts ...Recipient) Envelope {
		return Envelope{Sender: alice, EnforceOutgoing: true, Recipients: rcpts}
	}
	// ordinary is a submission from an account without outgoing enforcement, or mail
	// from another server.
	ordinary := func(sender string, rcpts ...Recipient) Envelope {
		return Envelope{Sender: sender, Recipients: rcpts}
	}

	type decideFunc func([]byte, Envelope) Decision
	tests := []struct {
		name   string
		decide decideFunc
		msg    []byte
		env    Envelope
		want   Rule
	}{
		// §6.2 outgoing.
		{"out: not enforced", DecideOutgoing, plainText(alice, bob), ordinary(alice, remote(bob)), NotEnforced},
		{"out: encrypted", DecideOutgoing, enc, chatmail(remote(bob)), AcceptEncrypted},
		{"out: real message", DecideOutgoing, fixture(t, "encrypted.eml"), chatmail(remote(bob)), AcceptEncrypted},
		{"out: armor headers", DecideOutgoing, encHeaders, chatmail(remote(bob)), RejectCleartext},
		{"out: gnupg legacy framing", DecideOutgoing, fixture(t, "gnupg-old-format.eml"), chatmail(remote(bob)), RejectCleartext},
		{"out: secure-join vc-request", DecideOutgoing, sj, chatmail(remote(bob)), AcceptSecureJoin},
		{"out: secure-join vg-request", DecideOutgoing, secureJoin("vg-request", "secure-join: vg-request"), chatmail(remote(bob)), AcceptSecureJoin},
		{"out: secure-join later step in clear", DecideOutgoing, secureJoin("vc-request-with-auth", "secure-join: vc-request-with-auth"), chatmail(remote(bob)), RejectCleartext},
		{"out: plain text", DecideOutgoing, plainText(alice, bob), chatmail(remote(bob)), RejectCleartext},
		{"out: plain text to self", DecideOutgoing, plainText(alice, alice), chatmail(local(alice, true)), RejectCleartext},
		{"out: plain text, no recipients", DecideOutgoing, plainText(alice, bob), chatmail(), RejectCleartext},
		{"out: setup message to self", DecideOutgoing, asm, chatmail(local(alice, true)), AcceptAutocryptSetup},
		{"out: setup message, recipient in other case", DecideOutgoing, asm, chatmail(local("Alice@Chat.Example", true)), AcceptAutocryptSetup},
		{"out: setup message, Kelvin sign is not k", DecideOutgoing, setupMessage("kate@chat.example", "Autocrypt Setup Message", "multipart/mixed"),
			Envelope{Sender: "kate@chat.example", EnforceOutgoing: true, Recipients: []Recipient{remote("\u212Aate@chat.example")}}, RejectCleartext},
		{"out: setup message to another", DecideOutgoing, asm, chatmail(remote(bob)), RejectCleartext},
		{"out: setup message to self and another", DecideOutgoing, asm, chatmail(local(alice, true), remote(bob)), RejectCleartext},
		{"out: setup message, null sender", DecideOutgoing, asm, Envelope{EnforceOutgoing: true, Recipients: []Recipient{remote("")}}, RejectCleartext},
		{"out: setup message, other subject", DecideOutgoing, setupMessage(alice, "Autocrypt setup message", "multipart/mixed"), chatmail(local(alice, true)), RejectCleartext},
		{"out: setup message, padded subject", DecideOutgoing, setupMessage(alice, "  Autocrypt Setup Message ", "multipart/mixed"), chatmail(local(alice, true)), AcceptAutocryptSetup},
		{"out: setup message, encoded subject", DecideOutgoing, setupMessage(alice, "=?utf-8?q?Autocrypt_Setup_Message?=", "multipart/mixed"), chatmail(local(alice, true)), AcceptAutocryptSetup},
		{"out: setup message, not multipart/mixed", DecideOutgoing, setupMessage(alice, "Autocrypt Setup Message", "multipart/alternative"), chatmail(local(alice, true)), RejectCleartext},
		{"out: setup message, type in upper case", DecideOutgoing, setupMessage(alice, "Autocrypt Setup Message", "Multipart/Mixed"), chatmail(local(alice, true)), AcceptAutocryptSetup},
		{"out: mailer-daemon report is no exception", DecideOutgoing, dsn, chatmail(remote(bob)), RejectCleartext},

		// §6.3 incoming.
		{"in: no enforcing recipient", DecideIncoming, plainText(bob, alice), ordinary(bob, local(alice, false)), NotEnforced},
		{"in: no recipients", DecideIncoming, plainText(bob, alice), ordinary(bob), NotEnforced},
		{"in: plain text", DecideIncoming, plainText(bob, alice), ordinary(bob, local(alice, true)), RejectCleartext},
		{"in: plain text, one of two enforces", DecideIncoming, plainText(bob, alice), ordinary(bob, local(carol, false), local(alice, true)), RejectCleartext},
		{"in: recipient not marked local still counts", DecideIncoming, plainText(bob, alice), ordinary(bob, Recipient{Address: alice, EnforceIncoming: true}), RejectCleartext},
		{"in: encrypted", DecideIncoming, enc, ordinary(bob, local(alice, true)), AcceptEncrypted},
		{"in: armor headers allowed", DecideIncoming, encHeaders, ordinary(bob, local(alice, true)), AcceptEncrypted},
		{"in: secure-join", DecideIncoming, sj, ordinary(bob, local(alice, true)), AcceptSecureJoin},
		{"in: bounce", DecideIncoming, dsn, ordinary("", local(alice, true)), AcceptMailerDaemon},
		{"in: bounce, bare address in lower case", DecideIncoming, bounce("mailer-daemon@mx.relay.example", "auto-generated", "multipart/report"), ordinary("", local(alice, true)), AcceptMailerDaemon},
		{"in: bounce, display name net/mail refuses", DecideIncoming, bounce("Mail Delivery Subsystem (the [robot]) <Mailer-Daemon@mx.relay.example>", "auto-replied", "multipart/report"), ordinary("", local(alice, true)), AcceptMailerDaemon},
		{"in: bounce without Auto-Submitted", DecideIncoming, bounce("<MAILER-DAEMON@mx.relay.example>", "-", "multipart/report"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: bounce with empty Auto-Submitted", DecideIncoming, bounce("<MAILER-DAEMON@mx.relay.example>", " ", "multipart/report"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: bounce from postmaster", DecideIncoming, bounce("<postmaster@mx.relay.example>", "auto-replied", "multipart/report"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: bounce from a look-alike", DecideIncoming, bounce("<mailer-daemon.x@mx.relay.example>", "auto-replied", "multipart/report"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: mailer-daemon only in the display name", DecideIncoming, bounce("mailer-daemon@mx.relay.example <bob@relay.example>", "auto-replied", "multipart/report"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: bounce as multipart/mixed", DecideIncoming, bounce("<MAILER-DAEMON@mx.relay.example>", "auto-replied", "multipart/mixed"), ordinary("", local(alice, true)), RejectCleartext},
		{"in: read receipt from a person", DecideIncoming, bounce("<bob@relay.example>", "auto-replied", "multipart/report"), ordinary(bob, local(alice, true)), RejectCleartext},
		{"in: setup message is no exception", DecideIncoming, asm, ordinary(alice, local(alice, true)), RejectCleartext},

		// §6.2 and §6.3 on submission.
		{"sub: chatmail, encrypted to a local account", DecideSubmission, enc, chatmail(local(carol, true)), AcceptEncrypted},
		{"sub: chatmail, armor headers", DecideSubmission, encHeaders, chatmail(local(carol, true)), RejectCleartext},
		{"sub: chatmail, plain text to a local account without enforcement", DecideSubmission, plainText(alice, carol), chatmail(local(carol, false)), RejectCleartext},
		{"sub: chatmail, setup message to self", DecideSubmission, asm, chatmail(local(alice, true)), AcceptAutocryptSetup},
		{"sub: ordinary, plain text to an enforcing local account", DecideSubmission, plainText("dave@mail.example", alice), ordinary("dave@mail.example", remote(bob), local(alice, true)), RejectCleartext},
		{"sub: ordinary, plain text to local and remote without enforcement", DecideSubmission, plainText("dave@mail.example", bob), ordinary("dave@mail.example", remote(bob), local("erin@mail.example", false)), NotEnforced},
		{"sub: ordinary, a remote recipient's flag is not ours", DecideSubmission, plainText("dave@mail.example", bob), ordinary("dave@mail.example", Recipient{Address: bob, EnforceIncoming: true}), NotEnforced},
		{"sub: ordinary, armor headers to an enforcing local account", DecideSubmission, encHeaders, ordinary("dave@mail.example", local(alice, true)), AcceptEncrypted},
		{"sub: ordinary, secure-join", DecideSubmission, sj, ordinary("dave@mail.example", local(alice, true)), AcceptSecureJoin},
		{"sub: ordinary, setup message to self", DecideSubmission, setupMessage("dave@mail.example", "Autocrypt Setup Message", "multipart/mixed"), ordinary("dave@mail.example", local("dave@mail.example", true)), AcceptAutocryptSetup},
		{"sub: ordinary, setup message to another", DecideSubmission, setupMessage("dave@mail.example", "Autocrypt Setup Message", "multipart/mixed"), ordinary("dave@mail.example", local(alice, true)), RejectCleartext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.decide(tt.msg, tt.env)
			if d.Rule != tt.want {
				t.Fatalf("rule = %v, want %v (detail %q)", d.Rule, tt.want, d.Detail)
			}
			wantReply := ""
			if tt.want == RejectCleartext {
				wantReply = reply523
				if d.Detail == "" {
					t.Error("refusal without a detail for the log")
				}
			}
			if d.Reply() != wantReply || d.Accepted() != (wantReply == "") {
				t.Errorf("Reply() = %q, Accepted() = %v; want %q", d.Reply(), d.Accepted(), wantReply)
			}
		})
	}
}

func TestDecisionDetail(t *testing.T) {
	env := Envelope{Sender: "bob@relay.example", Recipients: []Recipient{{Address: "alice@chat.example", Local: true, EnforceIncoming: true}}}
	d := DecideIncoming(plainText("bob@relay.example", "alice@chat.example"), env)
	const want = "cleartext to <alice@chat.example>, which requires encryption: not multipart/encrypted"
	if d.Detail != want {
		t.Errorf("detail = %q, want %q", d.Detail, want)
	}
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("refused", "e2ee", d)
	if got := b.String(); !strings.Contains(got, `e2ee.rule=reject-cleartext e2ee.detail="cleartext to <alice@chat.example>`) {
		t.Errorf("log line %q", got)
	}
}

func TestReplyText(t *testing.T) {
	// The relay's tests and clients match this text byte for byte.
	if got := (Decision{Rule: RejectCleartext}).Reply(); got != reply523 {
		t.Errorf("Reply() = %q", got)
	}
}
