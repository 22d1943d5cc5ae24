package mailauth

import (
	"strings"
	"unicode/utf8"
)

// maxReason keeps a reason= from a remote party's error text within reasonable line
// lengths.
const maxReason = 120

// Header returns the Authentication-Results field (RFC 8601) for v, one result per
// folded line, ending in CRLF, ready to prepend to the message.
func (v *Verdict) Header() string {
	var results []string
	if !v.dkimOnly {
		s := "spf=" + string(v.SPF.Result)
		if v.SPF.Result == "" {
			s = "spf=none"
		}
		switch {
		case v.SPF.MailFrom != "":
			s += " smtp.mailfrom=" + pvalue(v.SPF.MailFrom)
		case v.SPF.Helo != "":
			s += " smtp.helo=" + pvalue(v.SPF.Helo)
		}
		results = append(results, s)
	}
	if len(v.DKIM) == 0 {
		results = append(results, "dkim=none")
	}
	for _, d := range v.DKIM {
		s := "dkim=" + string(d.Status)
		if d.Reason != "" {
			s += " reason=" + quoted(truncate(d.Reason, maxReason))
		}
		if d.Domain != "" {
			s += " header.d=" + pvalue(d.Domain)
		}
		if d.Selector != "" {
			s += " header.s=" + pvalue(d.Selector)
		}
		if d.Algorithm != "" {
			s += " header.a=" + pvalue(d.Algorithm)
		}
		results = append(results, s)
	}
	if !v.dkimOnly && v.DMARC.Result != "" {
		s := "dmarc=" + string(v.DMARC.Result)
		if v.DMARC.Policy != "" {
			s += " (p=" + string(v.DMARC.Policy) + ")"
		}
		if v.DMARC.From != "" {
			s += " header.from=" + pvalue(v.DMARC.From)
		}
		results = append(results, s)
	}
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(pvalue(v.authservID))
	for _, r := range results {
		b.WriteString(";\r\n\t")
		b.WriteString(r)
	}
	b.WriteString("\r\n")
	return b.String()
}

// pvalue renders a property value (RFC 8601 2.2): bare when it is a plain domain
// name, address or token, else as a quoted-string. Values come from the remote side,
// so nothing they hold may end the line or the field.
func pvalue(s string) string {
	if s == "" || strings.Count(s, "@") > 1 {
		return quoted(s)
	}
	for _, c := range []byte(s) {
		if !isAtext(c) && c != '.' && c != '@' {
			return quoted(s)
		}
	}
	return s
}

// isAtext reports the characters safe bare in a property value: letters, digits and
// the few punctuation marks of addresses and domains that are not MIME tspecials.
func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-^_`{|}~", c) >= 0
}

// quoted makes a quoted-string, escaping quotes and backslashes and dropping control
// characters and invalid UTF-8 (RFC 8616 allows UTF-8 here).
func quoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == utf8.RuneError, r < ' ', r == 0x7f:
			continue
		case r == '"' || r == '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// StripForged removes Authentication-Results fields that claim to come from hostname
// (RFC 8601 5): only this server may write those, so any it receives are forged or
// stale. The body is not touched, and msg itself is returned when nothing is removed.
func StripForged(msg []byte, hostname string) []byte {
	host := strings.TrimSuffix(hostname, ".")
	if host == "" {
		return msg
	}
	fields, _ := scanHeader(msg)
	var out []byte
	copied := 0
	for _, f := range fields {
		if !strings.EqualFold(f.name, "Authentication-Results") ||
			!strings.EqualFold(strings.TrimSuffix(authservID(f.value), "."), host) {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(msg))
		}
		out = append(out, msg[copied:f.start]...)
		copied = f.end
	}
	if out == nil {
		return msg
	}
	return append(out, msg[copied:]...)
}
