// Package dsn builds and parses delivery status notifications (RFC 3464): the
// multipart/report bounces and delay notices the outbound queue sends back to senders.
package dsn

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coibox/coibox/internal/ascii"
)

// Action is what happened to a recipient (RFC 3464 2.3.3).
type Action string

// The actions a DSN may report.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// Recipient is the per-recipient part of a report.
type Recipient struct {
	// FinalRecipient is the address the reporting MTA tried to deliver to.
	FinalRecipient string
	// OriginalRecipient, if known, is the address as first given by the sender.
	OriginalRecipient string
	Action            Action
	// Status is the enhanced status code ("5.1.1").
	Status string
	// RemoteMTA is the host name of the server that gave DiagnosticCode, if any.
	RemoteMTA string
	// DiagnosticCode is the remote server's SMTP reply ("550 5.1.1 no such user")
	// or, when no server answered, our own description in the same form.
	DiagnosticCode string
	LastAttempt    time.Time
	// WillRetryUntil is when a delayed message will be given up.
	WillRetryUntil time.Time
}

// Message is a DSN to build.
type Message struct {
	// ReportingMTA is the host name of the MTA writing the report.
	ReportingMTA string
	// From is the DSN's author; empty means MAILER-DAEMON@ReportingMTA.
	From string
	// To is the original message's envelope sender, who receives the report.
	To string
	// Date is when the report is written; zero means now.
	Date time.Time
	// MessageID is the report's own Message-ID without brackets; empty picks one.
	MessageID string
	// ArrivalDate is when the reporting MTA accepted the original message.
	ArrivalDate time.Time
	Recipients  []Recipient
	// OriginalHeader is the header section of the original message, returned so that
	// the sender (and its mail client) can tell which message the report is about.
	OriginalHeader []byte
	// Boundary is the MIME boundary; empty picks a random one. Tests fix it.
	Boundary string
}

// maxLine is where fields are folded; RFC 5322 2.1.1 recommends lines of at most 78.
const maxLine = 78

// Build writes m as a multipart/report message with CRLF line endings.
func Build(m *Message) ([]byte, error) {
	if len(m.Recipients) == 0 {
		return nil, errors.New("build dsn: no recipients")
	}
	if m.ReportingMTA == "" || m.To == "" {
		return nil, errors.New("build dsn: reporting MTA and recipient are required")
	}
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	boundary := m.Boundary
	if boundary == "" {
		boundary = "dsn-" + randomToken()
	}
	msgID := m.MessageID
	if msgID == "" {
		msgID = randomToken() + "@" + m.ReportingMTA
	}
	from := m.From
	if from == "" {
		from = "MAILER-DAEMON@" + m.ReportingMTA
	}
	origHeader := crlf(m.OriginalHeader)

	// Internationalized addresses or replies need the RFC 6533 media types; plain
	// ASCII reports keep the RFC 3464 ones that every client understands.
	global := !ascii.Is(string(origHeader)) || !ascii.Is(m.To)
	for _, r := range m.Recipients {
		if !ascii.Is(r.FinalRecipient) || !ascii.Is(r.OriginalRecipient) || !ascii.Is(r.DiagnosticCode) {
			global = true
		}
	}

	failed, delayed := 0, 0
	for _, r := range m.Recipients {
		switch r.Action {
		case Failed:
			failed++
		case Delayed:
			delayed++
		}
	}
	subject := "Delivery status notification"
	switch {
	case failed > 0:
		subject = "Undelivered mail returned to sender"
	case delayed > 0:
		subject = "Delayed mail (still being retried)"
	}

	var b bytes.Buffer
	field(&b, "From", "Mail Delivery System <"+from+">")
	field(&b, "To", "<"+clean(m.To, global)+">")
	field(&b, "Subject", subject)
	field(&b, "Date", date.Format(time.RFC1123Z))
	field(&b, "Message-ID", "<"+clean(msgID, false)+">")
	// RFC 3834 5: automatic responses say so, so that nobody auto-replies to them.
	field(&b, "Auto-Submitted", "auto-replied")
	field(&b, "MIME-Version", "1.0")
	field(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	b.WriteString("This is a MIME-encapsulated delivery status notification.\r\n")

	// Part 1: words for people.
	b.WriteString("\r\n--" + boundary + "\r\n")
	charset := "us-ascii"
	if global {
		charset = "utf-8"
	}
	field(&b, "Content-Type", "text/plain; charset="+charset)
	field(&b, "Content-Transfer-Encoding", cte(global))
	field(&b, "Content-Description", "Notification")
	b.WriteString("\r\n")
	writeHuman(&b, m, global)

	// Part 2: the machine-readable status.
	b.WriteString("\r\n--" + boundary + "\r\n")
	if global {
		field(&b, "Content-Type", "message/global-delivery-status")
	} else {
		field(&b, "Content-Type", "message/delivery-status")
	}
	field(&b, "Content-Description", "Delivery report")
	b.WriteString("\r\n")
	field(&b, "Reporting-MTA", "dns; "+clean(m.ReportingMTA, global))
	if !m.ArrivalDate.IsZero() {
		field(&b, "Arrival-Date", m.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, r := range m.Recipients {
		b.WriteString("\r\n")
		if r.OriginalRecipient != "" {
			field(&b, "Original-Recipient", addrType(r.OriginalRecipient, global)+clean(r.OriginalRecipient, global))
		}
		field(&b, "Final-Recipient", addrType(r.FinalRecipient, global)+clean(r.FinalRecipient, global))
		field(&b, "Action", clean(string(r.Action), false))
		field(&b, "Status", clean(r.Status, false))
		if r.RemoteMTA != "" {
			field(&b, "Remote-MTA", "dns; "+clean(r.RemoteMTA, global))
		}
		if r.DiagnosticCode != "" {
			field(&b, "Diagnostic-Code", "smtp; "+clean(r.DiagnosticCode, global))
		}
		if !r.LastAttempt.IsZero() {
			field(&b, "Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z))
		}
		if !r.WillRetryUntil.IsZero() {
			field(&b, "Will-Retry-Until", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}

	// Part 3: the original header, so the sender can match the report to its message.
	if len(origHeader) > 0 {
		b.WriteString("\r\n--" + boundary + "\r\n")
		if global {
			field(&b, "Content-Type", "message/global-headers")
		} else {
			field(&b, "Content-Type", "text/rfc822-headers")
		}
		field(&b, "Content-Description", "Undelivered message header")
		b.WriteString("\r\n")
		b.Write(origHeader)
		if !bytes.HasSuffix(origHeader, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

func writeHuman(b *bytes.Buffer, m *Message, global bool) {
	line := func(s string) { b.WriteString(s + "\r\n") }
	line("This is the mail system at " + clean(m.ReportingMTA, global) + ".")
	line("")
	var failed, delayed []Recipient
	for _, r := range m.Recipients {
		switch r.Action {
		case Failed:
			failed = append(failed, r)
		case Delayed:
			delayed = append(delayed, r)
		}
	}
	if len(failed) > 0 {
		line("Your message could not be delivered to the following recipients.")
		line("It will not be retried.")
		line("")
		for _, r := range failed {
			describe(b, r, global)
		}
	}
	if len(delayed) > 0 {
		line("Your message has not been delivered yet to the following recipients.")
		until := ""
		if !delayed[0].WillRetryUntil.IsZero() {
			until = " until " + delayed[0].WillRetryUntil.UTC().Format("2006-01-02 15:04 MST")
		}
		line("Delivery will be retried" + until + "; you need not send it again.")
		line("")
		for _, r := range delayed {
			describe(b, r, global)
		}
	}
}

func describe(b *bytes.Buffer, r Recipient, global bool) {
	s := "<" + clean(r.FinalRecipient, global) + ">"
	if r.RemoteMTA != "" {
		s += " (server " + clean(r.RemoteMTA, global) + ")"
	}
	b.WriteString(s + ":\r\n")
	if r.DiagnosticCode != "" {
		// Indent and wrap so that a long remote reply stays readable in plain text.
		for _, l := range wrap(clean(r.DiagnosticCode, global), maxLine-4) {
			b.WriteString("    " + l + "\r\n")
		}
	}
	b.WriteString("\r\n")
}

// field writes "Name: value" folded at spaces to keep lines near maxLine.
func field(b *bytes.Buffer, name, value string) {
	lines := wrap(name+": "+value, maxLine)
	for i, l := range lines {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
}

// wrap splits s at spaces into lines of at most width bytes where possible; a word
// longer than width stays whole, since splitting inside it would change its meaning.
func wrap(s string, width int) []string {
	var out []string
	for len(s) > width {
		i := strings.LastIndexByte(s[:width+1], ' ')
		if i <= 0 {
			i = strings.IndexByte(s, ' ')
			if i < 0 {
				break
			}
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return append(out, s)
}

// clean turns an arbitrary string (a remote reply may hold anything) into a safe field
// value: line breaks and runs of white space become one space, control characters
// are dropped and, unless utf8OK, non-ASCII becomes '?'.
func clean(s string, utf8OK bool) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			space = b.Len() > 0
			continue
		case r < 0x20 || r == 0x7f:
			continue
		case r == utf8.RuneError:
			r = '?'
		case r >= 0x80 && !utf8OK:
			r = '?'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// addrType is the RFC 3464 address type: utf-8 (RFC 6533) for internationalized
// addresses in a global report, rfc822 otherwise.
func addrType(addr string, global bool) string {
	if global && !ascii.Is(addr) {
		return "utf-8; "
	}
	return "rfc822; "
}

func cte(global bool) string {
	if global {
		return "8bit"
	}
	return "7bit"
}

// crlf normalizes bare LF line ends to CRLF.
func crlf(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) || bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+bytes.Count(b, []byte("\n")))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func randomToken() string {
	var r [12]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(r[:])
}

// HeaderSection returns the header section of a message, up to and including the
// blank line's preceding CRLF, for Message.OriginalHeader.
func HeaderSection(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

// String renders a recipient for logs.
func (r Recipient) String() string {
	return fmt.Sprintf("%s %s %s (%s)", r.FinalRecipient, r.Action, r.Status, r.DiagnosticCode)
}
