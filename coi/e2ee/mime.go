package e2ee

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// The rules read a handful of fields and at most two MIME parts, so this file scans the
// raw bytes in place rather than building a parse tree with go-message or
// mime/multipart: the common case then costs no copies, and nothing in a hostile
// message (deep nesting, thousands of parts, giant headers) can make the work more
// than linear in its size.

// fields holds the first value of each header field the rules read, still folded, or
// nil when the field is absent. First, because a second Secure-Join or Subject field
// must not override what a client displays.
type fields struct {
	contentType   []byte
	encoding      []byte // Content-Transfer-Encoding
	secureJoin    []byte
	subject       []byte
	from          []byte
	autoSubmitted []byte
}

// slot returns where the value of the field called name goes, or nil for a field the
// rules ignore.
func (f *fields) slot(name []byte) *[]byte {
	var p *[]byte
	switch len(name) {
	case 4:
		if asciiEqualFold(name, "from") {
			p = &f.from
		}
	case 7:
		if asciiEqualFold(name, "subject") {
			p = &f.subject
		}
	case 11:
		if asciiEqualFold(name, "secure-join") {
			p = &f.secureJoin
		}
	case 12:
		if asciiEqualFold(name, "content-type") {
			p = &f.contentType
		}
	case 14:
		if asciiEqualFold(name, "auto-submitted") {
			p = &f.autoSubmitted
		}
	case 25:
		if asciiEqualFold(name, "content-transfer-encoding") {
			p = &f.encoding
		}
	}
	if p == nil || *p != nil {
		return nil
	}
	return p
}

// splitEntity separates a message or MIME part into the fields the rules read and its
// body. Bare LF line ends are accepted as well as CRLF, because stored and test
// messages often have them. Without an empty line the whole entity is header.
func splitEntity(e []byte) (fields, []byte) {
	var f fields
	var cur *[]byte // the field being read, if the rules want it
	valStart := 0
	for i := 0; i < len(e); {
		end, next := len(e), len(e)
		if j := bytes.IndexByte(e[i:], '\n'); j >= 0 {
			end, next = i+j, i+j+1
		}
		if end > i && e[end-1] == '\r' {
			end--
		}
		line := e[i:end]
		switch {
		case len(line) == 0:
			return f, e[next:]
		case line[0] == ' ' || line[0] == '\t':
			if cur != nil {
				*cur = e[valStart:end]
			}
		default:
			cur = nil
			if c := bytes.IndexByte(line, ':'); c > 0 {
				// Obsolete syntax (RFC 5322 4.5) allows white space before the colon.
				if cur = f.slot(bytes.TrimRight(line[:c], " \t")); cur != nil {
					valStart = i + c + 1
					*cur = e[valStart:end]
				}
			}
		}
		i = next
	}
	return f, nil
}

// unfold turns a folded field value into one trimmed line; it copies only when the
// value was actually folded.
func unfold(v []byte) []byte {
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		out := make([]byte, 0, len(v))
		for _, c := range v {
			if c != '\r' && c != '\n' {
				out = append(out, c)
			}
		}
		v = out
	}
	return bytes.Trim(v, " \t")
}

// mediaType returns the lower-cased media type of a Content-Type value and its boundary
// parameter. A missing field means text/plain (RFC 2045 5.2); an unparsable one gives
// "", which matches no rule, so the message counts as cleartext.
func mediaType(v []byte) (typ, boundary string) {
	if v == nil {
		return "text/plain", ""
	}
	t, params, err := mime.ParseMediaType(string(unfold(v)))
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return "", ""
	}
	return t, params["boundary"]
}

// isMultipart reports whether a lower-cased media type is multipart/*.
func isMultipart(typ string) bool { return strings.HasPrefix(typ, "multipart/") }

// splitMultipart returns the entities of a multipart body (RFC 2046 5.1.1), but no more
// than max+1 of them: the rules only need to tell "exactly n" from "more". ok is false
// when the body has no delimiter line at all. An unterminated last part runs to the end
// of the body, as lenient readers (and so the relay) treat it.
func splitMultipart(body []byte, boundary string, max int) (parts [][]byte, ok bool) {
	if boundary == "" {
		return nil, false
	}
	dash := []byte("--" + boundary)
	_, from, closing, found := nextDelimiter(body, 0, dash)
	if !found {
		return nil, false
	}
	for !closing && len(parts) <= max {
		start, end, cl, found := nextDelimiter(body, from, dash)
		if !found {
			parts = append(parts, body[from:])
			break
		}
		parts = append(parts, body[from:start])
		from, closing = end, cl
	}
	return parts, true
}

// nextDelimiter finds the next boundary delimiter line at or after from. start is where
// the preceding part's content ends (the line break before the delimiter belongs to
// the delimiter), end where the next part begins, and closing reports a "--" close
// delimiter.
func nextDelimiter(body []byte, from int, dash []byte) (start, end int, closing, found bool) {
	for at := from; ; {
		p := indexLineStart(body, at, dash)
		if p < 0 {
			return 0, 0, false, false
		}
		q := p + len(dash)
		cl := bytes.HasPrefix(body[q:], []byte("--"))
		if cl {
			q += 2
		}
		for q < len(body) && (body[q] == ' ' || body[q] == '\t') {
			q++ // transport padding
		}
		switch {
		case q == len(body):
			end = q
		case body[q] == '\n':
			end = q + 1
		case body[q] == '\r' && q+1 < len(body) && body[q+1] == '\n':
			end = q + 2
		default:
			at = p + 1 // the boundary string begins a longer line: not a delimiter
			continue
		}
		start = p
		if start > from && body[start-1] == '\n' {
			start--
			if start > from && body[start-1] == '\r' {
				start--
			}
		}
		return start, end, cl, true
	}
}

// indexLineStart returns the index of the first occurrence of dash at or after at that
// begins a line, or -1. Occurrences inside a line are skipped without a closer look.
func indexLineStart(body []byte, at int, dash []byte) int {
	for at <= len(body) {
		j := bytes.Index(body[at:], dash)
		if j < 0 {
			return -1
		}
		if p := at + j; p == 0 || body[p-1] == '\n' {
			return p
		}
		at += j + 1
	}
	return -1
}

// decodeBody undoes a part's Content-Transfer-Encoding. ok is false for an encoding it
// does not know or a body that does not decode, since guessing at content would let
// a mangled part pass for something it is not.
func decodeBody(encoding, body []byte) ([]byte, bool) {
	enc := unfold(encoding)
	switch {
	case len(enc) == 0, asciiEqualFold(enc, "7bit"), asciiEqualFold(enc, "8bit"), asciiEqualFold(enc, "binary"):
		return body, true
	case asciiEqualFold(enc, "quoted-printable"):
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		return out, err == nil
	case asciiEqualFold(enc, "base64"):
		clean := make([]byte, 0, len(body))
		for _, c := range body {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				clean = append(clean, c)
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		return out[:n], err == nil
	}
	return nil, false
}

// asciiEqualFold compares b with the lower-case ASCII string s, ignoring ASCII case
// only: Unicode folding would let e.g. U+017F (long s) stand in for "s".
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
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
