package mailauth

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// field is one header field of a raw message and where it sits in it.
type field struct {
	name       string // before the colon, white space trimmed
	value      []byte // after the colon, line breaks of folding kept
	start, end int    // msg[start:end] is the whole field with its final line break
}

// scanHeader splits the header section of msg into fields without copying, the way
// go-msgauth reads it (LF or CRLF line ends; SP or HTAB continues a field; the first
// empty line ends the header), so that its n-th DKIM-Signature is go-msgauth's n-th.
// complete is false when no empty line ends the header.
func scanHeader(msg []byte) (fields []field, complete bool) {
	cur := -1 // start of the field being read
	flush := func(end int) {
		if cur < 0 {
			return
		}
		raw := msg[cur:end]
		name, value, _ := bytes.Cut(raw, []byte(":"))
		value = bytes.TrimRight(value, "\r\n")
		fields = append(fields, field{name: string(bytes.TrimSpace(name)), value: value, start: cur, end: end})
		cur = -1
	}
	pos := 0
	for pos < len(msg) {
		next := len(msg)
		found := false
		if i := bytes.IndexByte(msg[pos:], '\n'); i >= 0 {
			next, found = pos+i+1, true
		}
		line := bytes.TrimSuffix(bytes.TrimSuffix(msg[pos:next], []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			flush(pos)
			return fields, found
		}
		if cur < 0 || (line[0] != ' ' && line[0] != '\t') {
			flush(pos)
			cur = pos
		}
		pos = next
	}
	flush(len(msg))
	return fields, false
}

// unfold joins a folded field value into one line (RFC 5322 2.2.3).
func unfold(v []byte) string {
	s := strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(string(v))
	return strings.TrimSpace(s)
}

// parseTags reads a DKIM tag=value list (RFC 6376 3.2) leniently, only to report the
// selector and algorithm a signature names; go-msgauth judges the signature itself.
func parseTags(s string) map[string]string {
	tags := make(map[string]string)
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; !ok || dup || k == "" {
			continue
		}
		tags[k] = strings.Join(strings.Fields(v), "")
	}
	return tags
}

// fromDomains returns the lower-case domains of the addresses in the From field
// value v. Display names are not needed, so encoded words in unknown charsets must not
// make parsing fail; a From that net/mail rejects still yields its domain if it has
// the common "name <addr>" or bare "addr" shape.
func fromDomains(v string) []string {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	var addrs []string
	if list, err := p.ParseList(v); err == nil {
		for _, a := range list {
			addrs = append(addrs, a.Address)
		}
	} else {
		addr := v
		if i := strings.LastIndexByte(addr, '<'); i >= 0 {
			addr = addr[i+1:]
			if j := strings.IndexByte(addr, '>'); j >= 0 {
				addr = addr[:j]
			}
		}
		addrs = []string{strings.TrimSpace(addr)}
	}
	var domains []string
	for _, a := range addrs {
		at := strings.LastIndexByte(a, '@')
		if at < 0 || at == len(a)-1 {
			return nil
		}
		d := strings.TrimSuffix(strings.ToLower(a[at+1:]), ".")
		if d == "" || strings.ContainsAny(d, " \t\r\n<>,;\"") {
			return nil
		}
		domains = append(domains, d)
	}
	return domains
}

// authservID returns the authserv-id an Authentication-Results value starts with
// (RFC 8601 2.2): a token or quoted-string after optional comments and white space.
func authservID(v []byte) string {
	s := skipCFWS(string(v))
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	end := strings.IndexAny(s, " \t\r\n;()")
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

// skipCFWS drops leading white space and (nested) comments.
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, "(") {
			return s
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(s) {
			return ""
		}
		s = s[i+1:]
	}
}
