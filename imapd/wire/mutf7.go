package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3) is how IMAP4rev1 clients name mailboxes
// with non-ASCII characters: "&" + modified base64 of UTF-16BE + "-".

var mb64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding).Strict()

// EncodeMUTF7 encodes a UTF-8 mailbox name in modified UTF-7. Invalid
// UTF-8 is encoded as U+FFFD.
func EncodeMUTF7(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '&' {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	var pending []uint16
	flush := func() {
		if len(pending) == 0 {
			return
		}
		raw := make([]byte, 0, 2*len(pending))
		for _, u := range pending {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mb64.EncodeToString(raw))
		b.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteByte(byte(r))
			}
			continue
		}
		pending = utf16.AppendRune(pending, r)
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes a modified UTF-7 mailbox name to UTF-8. Raw UTF-8
// is passed through, since some IMAP4rev1 clients send it; encodings that
// are not canonical (printable ASCII inside "&…-") are refused so that one
// mailbox has one name.
func DecodeMUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		if !utf8.ValidString(s) {
			return "", errors.New("invalid UTF-8")
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errors.New("unterminated &-sequence")
		}
		enc := s[i+1 : i+1+j]
		i += j + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mb64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", fmt.Errorf("bad &-sequence %q", enc)
		}
		for k := 0; k < len(raw); k += 2 {
			u := rune(raw[k])<<8 | rune(raw[k+1])
			switch {
			case utf16.IsSurrogate(u):
				if u >= 0xdc00 || k+3 >= len(raw) {
					return "", fmt.Errorf("unpaired surrogate in %q", enc)
				}
				u2 := rune(raw[k+2])<<8 | rune(raw[k+3])
				r := utf16.DecodeRune(u, u2)
				if r == utf8.RuneError {
					return "", fmt.Errorf("unpaired surrogate in %q", enc)
				}
				b.WriteRune(r)
				k += 2
			case u >= 0x20 && u <= 0x7e:
				return "", fmt.Errorf("ASCII encoded in %q", enc)
			default:
				b.WriteRune(u)
			}
		}
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", errors.New("invalid UTF-8")
	}
	return out, nil
}
