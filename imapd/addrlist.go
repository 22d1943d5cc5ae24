package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// addressList parses an address header field for ENVELOPE, keeping RFC 5322 groups
// as RFC 9051 §7.5.2 writes them: a group opens with (NIL NIL "name" NIL), lists its
// members, and closes with (NIL NIL NIL NIL); an empty group is the two alone.
// net/mail (and so go-imap's extraction) flattens groups and drops empty ones.
func addressList(hdr textproto.Header, key string) []imap.Address {
	v := hdr.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []imap.Address
	for _, seg := range splitGroups(v) {
		// A group without a name cannot be written (its opening would read as a
		// closing): its members are kept, ungrouped.
		name := ""
		if seg.group {
			name = decodeWords(seg.name)
		}
		if name != "" {
			out = append(out, imap.Address{Mailbox: name})
		}
		out = append(out, plainAddresses(seg.text)...)
		if name != "" {
			out = append(out, imap.Address{})
		}
	}
	return out
}

// segment is a run of plain addresses or one group of an address list.
type segment struct {
	group bool
	name  string // the group's display name
	text  string // the addresses: the plain run, or the group's members
}

// splitGroups cuts an address list into plain runs and groups; a ":" or ";" inside
// a quoted string, comment or angle address is not taken for a group's.
func splitGroups(v string) []segment {
	var segs []segment
	start := 0
	inGroup := false
	var groupName string
	eachTopLevel(v, func(i int, c byte) {
		switch {
		case c == ':' && !inGroup:
			// The text before the colon, after the last plain address, names the
			// group; what came before that is a plain run.
			head := v[start:i]
			cut := strings.LastIndexByte(head, ',')
			if plain := head[:max(cut, 0)]; strings.TrimSpace(plain) != "" {
				segs = append(segs, segment{text: plain})
			}
			groupName = strings.TrimSpace(head[cut+1:])
			inGroup, start = true, i+1
		case c == ';' && inGroup:
			segs = append(segs, segment{group: true, name: groupName, text: v[start:i]})
			inGroup, start = false, i+1
		}
	})
	rest := v[start:]
	if inGroup {
		segs = append(segs, segment{group: true, name: groupName, text: rest}) // an unclosed group
	} else if strings.TrimSpace(strings.Trim(rest, ", \t")) != "" {
		segs = append(segs, segment{text: rest})
	}
	return segs
}

// eachTopLevel calls f for each byte of an address list that stands outside quoted
// strings (with their quoted pairs), comments (nested) and angle addresses, the
// delimiters of those left out: the bytes where list and group syntax can be.
func eachTopLevel(s string, f func(i int, c byte)) {
	depth := 0
	quoted, angle := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '"':
			quoted = true
		case c == '(':
			depth++
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case angle:
		default:
			f(i, c)
		}
	}
}

// plainAddresses parses a run of addresses; when the run does not parse whole, each
// comma-separated piece is tried on its own, so one bad address costs only itself.
// net/mail refuses comments inside an address (`<user (c)@ (d) example.org>`), which
// RFC 5322 §3.4.1 allows as CFWS around every token: such a piece is read again
// without its comments, and an address written the old way, `user@host (Name)`,
// keeps its comment as the display name.
func plainAddresses(s string) []imap.Address {
	s = strings.Trim(strings.TrimSpace(s), ",")
	if strings.TrimSpace(s) == "" {
		return nil
	}
	list, err := mail.ParseAddressList(s)
	if err != nil {
		list = nil
		for _, piece := range splitOutside(s, ',') {
			if a, err := mail.ParseAddress(piece); err == nil {
				list = append(list, a)
				continue
			}
			bare, comments := stripComments(piece)
			a, err := mail.ParseAddress(squeezeAddrSpec(bare))
			if err != nil {
				continue
			}
			if a.Name == "" && len(comments) > 0 && !strings.Contains(bare, "<") {
				a.Name = strings.TrimSpace(comments[len(comments)-1])
			}
			list = append(list, a)
		}
	}
	out := make([]imap.Address, 0, len(list))
	for _, a := range list {
		mailbox, host, ok := strings.Cut(a.Address, "@")
		if !ok {
			continue
		}
		out = append(out, imap.Address{Name: a.Name, Mailbox: mailbox, Host: host})
	}
	return out
}

// decodeWords decodes RFC 2047 encoded words in a group's display name, and drops
// the quotes of a quoted one.
func decodeWords(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `\`, "")
	}
	var h mail.Header
	h.Set("X", s)
	if d, err := h.Text("X"); err == nil {
		return d
	}
	return s
}

// splitOutside splits s at sep where it stands outside quoted strings, comments and
// angle addresses.
func splitOutside(s string, sep byte) []string {
	var out []string
	start := 0
	eachTopLevel(s, func(i int, c byte) {
		if c == sep {
			out = append(out, s[start:i])
			start = i + 1
		}
	})
	return append(out, s[start:])
}

// stripComments removes the comments (nested, with quoted pairs) outside quoted
// strings from s, each replaced by a space, and returns them too, outermost text
// only, in order.
func stripComments(s string) (string, []string) {
	var b strings.Builder
	var comments []string
	var cur strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case depth > 0:
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				cur.WriteByte(s[i])
			case c == '(':
				depth++
				cur.WriteByte(c)
			case c == ')':
				depth--
				if depth == 0 {
					comments = append(comments, cur.String())
					cur.Reset()
					b.WriteByte(' ')
				} else {
					cur.WriteByte(c)
				}
			default:
				cur.WriteByte(c)
			}
		case quoted:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			} else if c == '"' {
				quoted = false
			}
		case c == '"':
			quoted = true
			b.WriteByte(c)
		case c == '(':
			depth = 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), comments
}

// squeezeAddrSpec removes the white space, outside quoted strings, that comments
// left inside the addr-spec of s (between the angle brackets, or all of s without
// them): an addr-spec has no white space of its own (RFC 5322 §3.4.1), and net/mail
// reads none.
func squeezeAddrSpec(s string) string {
	lo, hi := 0, len(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.LastIndexByte(s, '>'); j > i {
			lo, hi = i+1, j
		}
	}
	var b strings.Builder
	b.WriteString(s[:lo])
	quoted := false
	for i := lo; i < hi; i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < hi:
			b.WriteByte(c)
			i++
			c = s[i]
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			continue
		}
		b.WriteByte(c)
	}
	b.WriteString(s[hi:])
	return b.String()
}
