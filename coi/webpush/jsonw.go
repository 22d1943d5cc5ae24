package webpush

import "unicode/utf8"

// The JSON this package writes is built by hand: the spec fixes the field order
// (§8.5, §8.7), and the truncation rule counts escaped bytes, which encoding/json
// cannot report. Strings escape only what JSON requires (plus DEL), so non-ASCII text
// stays as UTF-8, as in the spec's vectors; invalid UTF-8 becomes U+FFFD so the
// output is always valid JSON.

// appendJSONString appends s as a JSON string, quotes included.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst, _ = appendEscaped(dst, s, -1)
	return append(dst, '"')
}

// appendTruncated appends s as a JSON string whose escaped content is at most limit
// bytes (§8.7): if it is longer, it is cut before the first character or escape that
// would cross the limit, and "…" is appended.
func appendTruncated(dst []byte, s string, limit int) []byte {
	dst = append(dst, '"')
	dst, cut := appendEscaped(dst, s, limit)
	if cut {
		dst = append(dst, "…"...)
	}
	return append(dst, '"')
}

// escapedLen is the length of s escaped, without quotes.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += unitLen(r, size)
		i += size
	}
	return n
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends the escaped form of s, stopping before the first unit (one
// character or escape) that would make it longer than limit bytes; limit < 0 means no
// limit. It reports whether it stopped early. Runs of characters that need no escape
// are copied at once: message bodies are mostly such runs.
func appendEscaped(dst []byte, s string, limit int) ([]byte, bool) {
	n, run := 0, 0 // escaped length so far; start of the pending run
	for i := 0; i < len(s); {
		c := s[i]
		size := 1
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			// plain ASCII
		} else if c >= utf8.RuneSelf {
			var r rune
			if r, size = utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && size == 1 {
				size = 0 // invalid: replaced below
			}
		} else {
			size = 0 // escaped below
		}
		if size > 0 {
			if limit >= 0 && n+size > limit {
				return append(dst, s[run:i]...), true
			}
			n += size
			i += size
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		u := unitLen(r, size)
		if limit >= 0 && n+u > limit {
			return append(dst, s[run:i]...), true
		}
		dst = append(dst, s[run:i]...)
		n += u
		i += size
		run = i
		switch r {
		case '"', '\\':
			dst = append(dst, '\\', byte(r))
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case utf8.RuneError: // only an invalid byte gets here
			dst = utf8.AppendRune(dst, utf8.RuneError)
		default: // other control characters and DEL
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		}
	}
	return append(dst, s[run:]...), false
}

// unitLen is the escaped length of rune r, which took size bytes in the input.
func unitLen(r rune, size int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == 0x7f:
		return 6
	case r == utf8.RuneError && size == 1:
		return 3
	default:
		return size
	}
}
