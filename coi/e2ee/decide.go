package e2ee

import (
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"strconv"
	"strings"
)

// The refusal of §6.2 and §6.3. Clients and the relay's tests match the text, so it is
// sent exactly so: code, one space, text, and no enhanced status code (with go-smtp,
// EnhancedCode: smtp.NoEnhancedCode, or it inserts one).
const (
	ReplyCode = 523
	ReplyText = "Encryption Needed: Invalid Unencrypted Mail"
)

// Envelope is what the rules need to know of a transaction besides the message.
type Envelope struct {
	// Sender is the envelope sender (MAIL FROM), "" for the null sender.
	Sender string
	// EnforceOutgoing is the sender's domain's enforce_e2ee_outgoing setting (§6.2);
	// only submissions read it.
	EnforceOutgoing bool
	// Recipients are the accepted recipients, without duplicates.
	Recipients []Recipient
}

// Recipient is one accepted recipient.
type Recipient struct {
	Address string
	// Local is true when the address is hosted here, so the message is delivered here.
	Local bool
	// EnforceIncoming is the account's enforce_e2ee_incoming flag (§6.3); false for an
	// address that is not a local account.
	EnforceIncoming bool
}

// Rule is the rule that settled a decision.
type Rule uint8

const (
	// NotEnforced: no rule applies (no enforcing sender or recipient), so the message
	// was not even inspected.
	NotEnforced Rule = iota + 1
	// AcceptEncrypted is an encrypted message (§6.1).
	AcceptEncrypted
	// AcceptSecureJoin is a Secure-Join vc-request or vg-request (§6.1).
	AcceptSecureJoin
	// AcceptAutocryptSetup is a self-sent Autocrypt Setup Message (§6.2).
	AcceptAutocryptSetup
	// AcceptMailerDaemon is a cleartext delivery report from a mailer-daemon (§6.3).
	AcceptMailerDaemon
	// RejectCleartext refuses the whole transaction with ReplyCode and ReplyText.
	RejectCleartext
)

func (r Rule) String() string {
	switch r {
	case NotEnforced:
		return "not-enforced"
	case AcceptEncrypted:
		return "encrypted"
	case AcceptSecureJoin:
		return "securejoin-request"
	case AcceptAutocryptSetup:
		return "autocrypt-setup-message"
	case AcceptMailerDaemon:
		return "mailer-daemon-report"
	case RejectCleartext:
		return "reject-cleartext"
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// Decision is the outcome of one check.
type Decision struct {
	Rule Rule
	// Detail says, for a refusal, why the message did not count as encrypted and who
	// required it. It is for logs and is never sent to the client: the reply stays
	// the fixed text.
	Detail string
}

// Accepted reports whether the message may go on.
func (d Decision) Accepted() bool { return d.Rule != RejectCleartext }

// Reply is the SMTP reply line refusing the message, "" when it was accepted; HTTP
// /mxdeliv sends the same line as its 400 body.
func (d Decision) Reply() string {
	if d.Accepted() {
		return ""
	}
	return strconv.Itoa(ReplyCode) + " " + ReplyText
}

// LogValue lets a Decision be logged as one attribute.
func (d Decision) LogValue() slog.Value {
	if d.Detail == "" {
		return slog.GroupValue(slog.String("rule", d.Rule.String()))
	}
	return slog.GroupValue(slog.String("rule", d.Rule.String()), slog.String("detail", d.Detail))
}

// DecideOutgoing applies §6.2 to a message a logged-in account submits: when its domain
// enforces outgoing encryption, only encrypted messages, Secure-Join requests and a
// self-sent Autocrypt Setup Message may leave.
func DecideOutgoing(msg []byte, env Envelope) Decision {
	if !env.EnforceOutgoing {
		return Decision{Rule: NotEnforced}
	}
	return outgoing(parse(msg), env)
}

func outgoing(m *message, env Envelope) Decision {
	ok, why := m.encrypted(Outgoing)
	switch {
	case ok:
		return Decision{Rule: AcceptEncrypted}
	case m.secureJoinRequest():
		return Decision{Rule: AcceptSecureJoin}
	case autocryptSetup(m, env):
		return Decision{Rule: AcceptAutocryptSetup}
	}
	return Decision{Rule: RejectCleartext, Detail: fmt.Sprintf("outgoing cleartext from <%s>: %s", env.Sender, why)}
}

// DecideIncoming applies §6.3 to mail from other servers (port 25, /mxdeliv): if any
// recipient enforces incoming encryption, a message that is not encrypted, a
// Secure-Join request or a mailer-daemon report is refused for all of them. Every
// recipient counts, Local or not, since mail from outside only reaches local ones.
func DecideIncoming(msg []byte, env Envelope) Decision {
	return incoming(msg, env, false)
}

// DecideSubmission applies what §6 asks of a submitted message: §6.2 when the sender's
// domain enforces it, and otherwise §6.3 for the local recipients, so an account
// without outgoing enforcement cannot hand cleartext to a local account that refuses
// it.
//
// When §6.2 applies, its acceptance stands for the local recipients too: whatever it
// accepts also passes §6.3, except the self-sent Autocrypt Setup Message, which goes
// to the sender's own account and so is not incoming mail from anyone. For the same
// reason §6.3 lets a self-sent Setup Message through on a submission.
func DecideSubmission(msg []byte, env Envelope) Decision {
	if env.EnforceOutgoing {
		return outgoing(parse(msg), env)
	}
	return incoming(msg, env, true)
}

func incoming(msg []byte, env Envelope, submitted bool) Decision {
	enforcer := ""
	for _, r := range env.Recipients {
		if r.EnforceIncoming && (r.Local || !submitted) {
			enforcer = r.Address
			break
		}
	}
	if enforcer == "" {
		return Decision{Rule: NotEnforced}
	}
	m := parse(msg)
	ok, why := m.encrypted(Incoming)
	switch {
	case ok:
		return Decision{Rule: AcceptEncrypted}
	case m.secureJoinRequest():
		return Decision{Rule: AcceptSecureJoin}
	case mailerDaemonReport(m):
		return Decision{Rule: AcceptMailerDaemon}
	case submitted && autocryptSetup(m, env):
		return Decision{Rule: AcceptAutocryptSetup}
	}
	return Decision{Rule: RejectCleartext, Detail: fmt.Sprintf("cleartext to <%s>, which requires encryption: %s", enforcer, why)}
}

// autocryptSetup recognises a self-sent Autocrypt Setup Message (Autocrypt 1.1 4.4):
// the key backup an older client mails to its own address. It is encrypted with a
// setup code inside, but its MIME structure is not OpenPGP/MIME.
func autocryptSetup(m *message, env Envelope) bool {
	return len(env.Recipients) == 1 &&
		env.Sender != "" &&
		// ASCII case only: the sender is a local account, and Unicode folding could
		// match some other, remote, address.
		asciiLower(env.Recipients[0].Address) == asciiLower(env.Sender) &&
		m.typ == "multipart/mixed" &&
		subject(m.hdr.subject) == "Autocrypt Setup Message"
}

// subject returns a Subject field's text, with RFC 2047 encoded words decoded as mail
// readers show them.
func subject(v []byte) string {
	s := string(unfold(v))
	if strings.Contains(s, "=?") {
		if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
			return strings.TrimSpace(d)
		}
	}
	return s
}

// mailerDaemonReport recognises a delivery report (§6.3): a non-empty Auto-Submitted
// field, a From address starting with "mailer-daemon@" in any case, and the
// multipart/report type. Bounces must reach chatmail users, and servers cannot
// encrypt them.
func mailerDaemonReport(m *message) bool {
	if m.typ != "multipart/report" || len(unfold(m.hdr.autoSubmitted)) == 0 || m.hdr.from == nil {
		return false
	}
	from := asciiLower(fromAddress(m.hdr.from))
	return strings.HasPrefix(from, "mailer-daemon@")
}

// fromAddress returns the first address of a From field. Fields net/mail refuses
// (unquoted dots or brackets in a display name are common in bounces) fall back to
// the text inside the last angle brackets.
func fromAddress(v []byte) string {
	s := string(unfold(v))
	if l, err := mail.ParseAddressList(s); err == nil && len(l) > 0 {
		return l[0].Address
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return strings.TrimSpace(s[i+1 : i+j])
		}
	}
	return strings.TrimSpace(s)
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	for i := range len(s) {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
