package coiext

import (
	"bytes"
	"net/textproto"
	"strings"
)

// ChatKeyword marks chat messages (§7.1).
const ChatKeyword = "$Chat"

// IsChat reports whether a message is a chat message (§6): a Chat-Version field, even
// empty, or a first Message-ID or References msg-id starting with "chat$". The first
// instance of each field counts; In-Reply-To does not.
func IsChat(msg []byte) bool {
	h := header(msg)
	if _, ok := h[textproto.CanonicalMIMEHeaderKey("Chat-Version")]; ok {
		return true
	}
	return strings.HasPrefix(firstID(h.Get("Message-Id")), "chat$") ||
		strings.HasPrefix(firstID(h.Get("References")), "chat$")
}

// GroupID is the COI group of a chat message, "" for none (§6).
func GroupID(msg []byte) string {
	h := header(msg)
	id := firstID(h.Get("Message-Id"))
	if !strings.HasPrefix(id, "chat$group.") {
		id = firstID(h.Get("References"))
	}
	rest, ok := strings.CutPrefix(id, "chat$group.")
	if !ok {
		return ""
	}
	g, _, _ := strings.Cut(rest, ".")
	return g
}

// header reads the message's header section, tolerating what textproto cannot
// parse by keeping what came before it.
func header(msg []byte) textproto.MIMEHeader {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	} else {
		end += 4
	}
	r := textproto.NewReader(bufioReader(msg[:end]))
	h, _ := r.ReadMIMEHeader()
	return h
}

// firstID is the first msg-id of a field value, without its angle brackets.
func firstID(v string) string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "<") {
		f := strings.Fields(v)
		if len(f) == 0 {
			return ""
		}
		return f[0]
	}
	end := strings.IndexByte(v, '>')
	if end < 0 {
		return v[1:]
	}
	return v[1:end]
}
