package dkim

import (
	"bytes"
	"strings"
)

// field is one header field of a raw message, as it appears on the wire.
type field struct {
	name  string // before the colon, surrounding white space removed
	value string // after the colon, folding kept
}

// headerFields splits the header section of msg into fields, the way go-msgauth reads
// it (lines end in LF or CRLF; a line starting with SP or HTAB continues the previous
// field; the first empty line ends the header), so that the n-th DKIM-Signature field
// found here is the n-th one go-msgauth verifies. complete is false when msg has no
// empty line after the header, which go-msgauth treats as unreadable.
func headerFields(msg []byte) (fields []field, complete bool) {
	var cur []byte
	flush := func() {
		if cur == nil {
			return
		}
		name, value, _ := bytes.Cut(cur, []byte(":"))
		fields = append(fields, field{name: string(bytes.TrimSpace(name)), value: string(value)})
		cur = nil
	}
	for len(msg) > 0 {
		line, rest, found := bytes.Cut(msg, []byte("\n"))
		msg = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			flush()
			return fields, found
		}
		if cur != nil && (line[0] == ' ' || line[0] == '\t') {
			cur = append(append(cur, "\r\n"...), line...)
			continue
		}
		flush()
		cur = append([]byte{}, line...)
		if !found {
			break
		}
	}
	flush()
	return fields, false
}

// parseTags parses a DKIM tag=value list (RFC 6376 3.2) leniently: it only serves to
// report which selector and algorithm a signature named, so malformed pieces are
// skipped rather than failing (go-msgauth judges the signature itself). White space
// is removed from values, as every tag coibox reads here allows FWS anywhere.
func parseTags(s string) map[string]string {
	tags := make(map[string]string)
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; dup || k == "" {
			continue
		}
		tags[k] = stripSpace(v)
	}
	return tags
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}
