package webpush

import (
	"bytes"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// Delivery is one message committed to one account's mailbox, as the delivery
// pipeline's post-commit hook knows it (§8.6).
type Delivery struct {
	Account     int64
	Mailbox     string // the folder it was stored in: INBOX, COI/Chats, …
	UIDValidity uint32
	UID         uint32
	// Chat: the message was stored with the $Chat keyword (§7.1).
	Chat bool
	// Message is the raw message as stored; Notify reads it before returning and
	// keeps none of it.
	Message []byte
}

const (
	// fieldLimit is the escaped length past which from-email, from-name, subject and
	// msg-id are cut, and group-id left out (§8.7).
	fieldLimit = 100
	// maxFolder: a delivery to a folder with a longer name is not pushed (§8.6).
	maxFolder = 1000
	// maxContent bounds the body that is sent along (§8.7).
	maxContent = 4096
	// contentBudget: with the body, the JSON must stay under this many bytes (§8.7).
	contentBudget = 3993
)

// newWordDecoder decodes RFC 2047 words in any charset go-message knows.
func newWordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: charset.Reader}
}

// payload is what a delivery pushes, before each subscription's filter.
type payload struct {
	json []byte
	// from is the first From address, lower-cased and uncut, for exclude_from.
	from string
}

// scanned is what Notify keeps of a delivery for the worker: the header fields the
// payload uses and a body small enough to be sent, each copied and bounded, so that a
// queued delivery holds a few KiB at most and nothing of the caller's buffer.
type scanned struct {
	account     int64
	mailbox     string
	uidValidity uint32
	uid         uint32
	chat        bool
	h           header
	// long marks a field cut at maxField; content-type and content-encoding that
	// long can never fit, so the body is then left out.
	long [nFields]bool
	body []byte // nil: none, or over maxContent
}

// maxField bounds each header field kept: more than any payload field can use.
const maxField = 4096

// scan is Notify's part: one pass over the header block, and copies. It reports
// false for a delivery that never notifies because of its folder name (§8.6).
func scan(d Delivery) (scanned, bool) {
	if len(d.Mailbox) > maxFolder {
		return scanned{}, false
	}
	sc := scanned{account: d.Account, mailbox: d.Mailbox, uidValidity: d.UIDValidity, uid: d.UID, chat: d.Chat}
	var body []byte
	sc.h, sc.long, body = parseHeader(d.Message)
	if len(body) > 0 && len(body) <= maxContent {
		sc.body = append([]byte(nil), body...)
	}
	return sc, true
}

// buildPayload makes the notification JSON of §8.7 for a delivery (scan, then render).
func buildPayload(d Delivery) (payload, bool) {
	sc, ok := scan(d)
	if !ok {
		return payload{}, false
	}
	return sc.render()
}

// render makes the notification JSON of §8.7 and reports false for a delivery that
// never notifies: an MDN (multipart/report, §8.6), or a JSON that cannot fit a push
// message.
func (sc *scanned) render() (payload, bool) {
	h := &sc.h
	ctype := h[hContentType]
	if mt, _, _ := mime.ParseMediaType(ctype); mt == "multipart/report" || (mt == "" && mediaType(ctype) == "multipart/report") {
		return payload{}, false
	}
	dec := newWordDecoder()

	b := make([]byte, 0, 512)
	b = append(b, `{"folder":`...)
	b = appendJSONString(b, sc.mailbox)
	b = append(b, `,"uidvalidity":`...)
	b = strconv.AppendUint(b, uint64(sc.uidValidity), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(sc.uid), 10)
	if v := h[hDate]; v != "" && !sc.long[hDate] {
		if t, err := mail.ParseDate(v); err == nil {
			b = append(b, `,"date":"`...)
			b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05")
			b = append(b, `+00:00"`...)
		}
	}
	email, name := fromAddress(dec, h[hFrom])
	if email != "" {
		b = append(b, `,"from-email":`...)
		b = appendTruncated(b, email, fieldLimit)
	}
	if name != "" {
		b = append(b, `,"from-name":`...)
		b = appendTruncated(b, name, fieldLimit)
	}
	if v := h[hSubject]; v != "" {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		if v = strings.TrimSpace(v); v != "" {
			b = append(b, `,"subject":`...)
			b = appendTruncated(b, v, fieldLimit)
		}
	}
	msgID := h[hMessageID]
	if msgID != "" {
		b = append(b, `,"msg-id":`...)
		b = appendTruncated(b, msgID, fieldLimit)
	}
	if g := groupID(msgID, h[hReferences]); g != "" && escapedLen(g) <= fieldLimit {
		b = append(b, `,"group-id":`...)
		b = appendJSONString(b, g)
	}

	// The body and its two headers go together (§8.7), and only when they fit.
	body := sc.body
	if body != nil && !sc.long[hContentType] && !sc.long[hCTE] && utf8.Valid(body) && bytes.IndexByte(body, 0) < 0 {
		withBody := append(make([]byte, 0, len(b)+2*len(body)+128), b...)
		if ctype != "" && !plainUTF8(ctype) {
			withBody = append(withBody, `,"content-type":`...)
			withBody = appendJSONString(withBody, ctype)
		}
		if cte := h[hCTE]; cte != "" && !identityEncoding(cte) {
			withBody = append(withBody, `,"content-encoding":`...)
			withBody = appendJSONString(withBody, cte)
		}
		withBody = append(withBody, `,"content":`...)
		withBody = appendJSONString(withBody, string(body))
		if len(withBody)+1 < contentBudget {
			b = withBody
		}
	}
	b = append(b, '}')
	if len(b) > MaxPlaintext {
		return payload{}, false
	}
	return payload{json: b, from: email}, true
}

// plainUTF8 reports a Content-Type that says nothing beyond the default: text/plain
// with no parameter but a charset a UTF-8 reader reads as is.
func plainUTF8(ctype string) bool {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "text/plain" {
		return false
	}
	switch len(params) {
	case 0:
		return true
	case 1:
		switch strings.ToLower(params["charset"]) {
		case "utf-8", "utf8", "us-ascii":
			return true
		}
	}
	return false
}

func identityEncoding(cte string) bool {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "7bit", "8bit":
		return true
	}
	return false
}

// mediaType is the type/subtype before any parameter, lower-cased, for a Content-Type
// too broken for mime.ParseMediaType.
func mediaType(ctype string) string {
	mt, _, _ := strings.Cut(ctype, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// fromAddress returns the first From address, lower-cased (D14), and its decoded
// display name. A From net/mail cannot parse still yields the address in its last
// angle brackets, so that exclude_from keeps working on sloppy senders.
func fromAddress(dec *mime.WordDecoder, v string) (email, name string) {
	if v == "" {
		return "", ""
	}
	p := mail.AddressParser{WordDecoder: dec}
	if list, err := p.ParseList(v); err == nil && len(list) > 0 {
		return strings.ToLower(list[0].Address), strings.TrimSpace(list[0].Name)
	}
	i := strings.LastIndexByte(v, '<')
	j := strings.LastIndexByte(v, '>')
	if i >= 0 && j > i && strings.Contains(v[i+1:j], "@") {
		return strings.ToLower(strings.TrimSpace(v[i+1 : j])), ""
	}
	return "", ""
}

// groupID is the COI group of a message (§6): from the Message-ID if it starts with
// chat$group., else from the first References msg-id if that does; the text after the
// prefix up to the next dot.
func groupID(messageID, references string) string {
	const prefix = "chat$group."
	for _, v := range []string{messageID, references} {
		if rest, ok := strings.CutPrefix(firstMsgID(v), prefix); ok {
			g, _, _ := strings.Cut(rest, ".")
			return g
		}
	}
	return ""
}

// firstMsgID is the first msg-id of a header value without its angle brackets.
func firstMsgID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			return v[:j]
		}
		return v
	}
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

// The fields the payload uses, as indexes into header.
const (
	hDate = iota
	hFrom
	hSubject
	hMessageID
	hReferences
	hContentType
	hCTE
	nFields
)

// header holds the first instance of each field the payload uses, unfolded and trimmed.
type header [nFields]string

// fieldIndex is the header index of a field name, or -1.
func fieldIndex(name []byte) int {
	for i, f := range [nFields]string{"date", "from", "subject", "message-id", "references", "content-type", "content-transfer-encoding"} {
		if len(name) == len(f) && bytes.EqualFold(name, []byte(f)) {
			return i
		}
	}
	return -1
}

// parseHeader splits msg at the end of its header block and collects the first
// instance of each field the payload needs, each cut at maxField (long says which
// were). It never fails: a line that is not a field is skipped, as a delivered
// message has already passed the pipeline's checks.
func parseHeader(msg []byte) (h header, long [nFields]bool, body []byte) {
	var seen [nFields]bool
	cur := -1
	rest := msg
	for len(rest) > 0 {
		line := rest
		next := len(rest)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], i+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		rest = rest[next:]
		if len(line) == 0 {
			body = rest // the blank line: the body follows
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = -1
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				continue
			}
			if i := fieldIndex(bytes.TrimRight(name, " \t")); i >= 0 && !seen[i] {
				seen[i], cur, line = true, i, value
			}
		}
		if cur < 0 {
			continue
		}
		// Unfolding removes only the line break (RFC 5322 §2.2.3).
		if len(h[cur])+len(line) > maxField {
			line, long[cur] = line[:maxField-len(h[cur])], true
		}
		h[cur] += string(line)
	}
	for i := range h {
		h[i] = strings.Trim(h[i], " \t")
	}
	return h, long, body
}
