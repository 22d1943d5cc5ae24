package deliver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"time"
)

// headerInfo is what the pipeline reads from a message's header section. It scans the
// raw bytes once instead of parsing the whole message: only these fields matter here.
type headerInfo struct {
	from     []string // unfolded values of every From field
	received int      // number of Received fields
}

// scanHeader reads the header section of a message (up to the first empty line).
func scanHeader(msg []byte) headerInfo {
	var h headerInfo
	var cur []byte // the field being unfolded, if it is a From field
	inFrom := false
	flush := func() {
		if inFrom {
			h.from = append(h.from, strings.TrimSpace(string(cur)))
		}
		inFrom, cur = false, cur[:0]
	}
	for len(msg) > 0 {
		line := msg
		next := len(msg)
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, next = msg[:i], i+1
		}
		msg = msg[next:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inFrom {
				cur = append(cur, line...)
			}
			continue
		}
		flush()
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // not a field; tolerated, as receivers do
		}
		name = bytes.TrimRight(name, " \t") // obsolete syntax allows WSP before the colon
		switch {
		case asciiEqualFold(name, "from"):
			inFrom = true
			cur = append(cur, value...)
		case asciiEqualFold(name, "received"):
			h.received++
		}
	}
	flush()
	return h
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// addressParser reads address lists. Display names may be encoded in any charset; only
// the addresses matter here, so unknown charsets are passed through instead of failing.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

var (
	errNoFrom    = errors.New("no From header field")
	errManyFroms = errors.New("more than one From header field")
	errEmptyFrom = errors.New("no address in the From header field")
)

// fromAddresses returns the addresses of a message's single From field. Several From
// fields are refused: clients show one while a filter may judge another.
func fromAddresses(h headerInfo) ([]string, error) {
	switch len(h.from) {
	case 0:
		return nil, errNoFrom
	case 1:
	default:
		return nil, errManyFroms
	}
	list, err := addressParser.ParseList(h.from[0])
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errEmptyFrom
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

// normalizeNewlines turns bare LF line endings into CRLF. A bare LF is ambiguous
// downstream (the SMTP smuggling attacks build on it) and IMAP requires CRLF, so the
// pipeline stores canonical CRLF text. Messages without a bare LF are returned as is.
func normalizeNewlines(b []byte) []byte {
	bare := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		if k := i + j; k == 0 || b[k-1] != '\r' {
			bare++
		}
		i += j + 1
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// receivedField is the Received trace field (RFC 5321 §4.4) for a message, with the
// protocol names of RFC 3848 and RFC 6531, ending in CRLF.
func receivedField(m *Message, hostname string, date time.Time) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString("Received: from ")
	b.WriteString(sanitizeToken(m.HELO, "unknown"))
	if m.RemoteIP.IsValid() {
		b.WriteString(" (")
		b.WriteString(addressLiteral(m.RemoteIP))
		b.WriteString(")")
	}
	b.WriteString("\r\n\tby ")
	b.WriteString(hostname)
	b.WriteString(" with ")
	if m.SMTPUTF8 {
		b.WriteString("UTF8SMTP")
	} else {
		b.WriteString("ESMTP")
	}
	if m.TLS != nil {
		b.WriteString("S")
	}
	if m.AccountID != 0 {
		b.WriteString("A")
	}
	if m.TLS != nil {
		b.WriteString(" (")
		b.WriteString(tls.VersionName(m.TLS.Version))
		b.WriteString(" ")
		b.WriteString(tls.CipherSuiteName(m.TLS.CipherSuite))
		b.WriteString(")")
	}
	b.WriteString(" id ")
	b.WriteString(m.ID)
	// Only a single recipient is named: listing all of them would tell each recipient
	// who else got the message, including Bcc recipients.
	if len(m.Recipients) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(sanitizeToken(m.Recipients[0].Address, ""))
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(date.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// addressLiteral writes an IP as an SMTP address literal: [192.0.2.1], [IPv6:2001:db8::1].
func addressLiteral(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		return "[IPv6:" + ip.String() + "]"
	}
	return "[" + ip.String() + "]"
}

// sanitizeToken makes client-supplied text (the HELO name, a recipient) safe inside a
// header field: printable, without spaces, comment or angle delimiters, and bounded.
func sanitizeToken(s, empty string) string {
	if s == "" {
		return empty
	}
	clean := true
	if len(s) > 255 {
		s, clean = s[:255], false // the cut may split a UTF-8 sequence: map it away
	}
	for i := 0; clean && i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == '<' || c == '>' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == '(' || r == ')' || r == '<' || r == '>' || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}

// hasBareCR reports whether body has a CR not followed by LF.
func hasBareCR(body []byte) bool {
	for {
		i := bytes.IndexByte(body, '\r')
		if i < 0 {
			return false
		}
		if i+1 == len(body) || body[i+1] != '\n' {
			return true
		}
		body = body[i+2:]
	}
}
