package imapd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/coibox/coibox/imapd/wire"
)

// A summary is computed once per message at delivery (store.Options.Summarize) so that
// FETCH ENVELOPE/BODYSTRUCTURE and header SEARCH never parse the message again. Layout,
// each variable part preceded by its length as a uvarint:
//
//	version byte (summaryVersion)
//	search text: the lower-cased, decoded header fields SEARCH reads, NUL-separated
//	  in searchField order
//	uvarint header length (bytes up to and including the blank line)
//	flag byte (sumNeedsDecoding, sumHasDate)
//	varint sent day: days since the epoch of the Date header in its own zone
//	ENVELOPE as IMAP4rev1 renders it; ENVELOPE in UTF-8 mode (empty: the same)
//	BODYSTRUCTURE likewise, rev1 then UTF-8 (empty: the same)
//
// Pre-rendered bytes make FETCH ENVELOPE a copy. A summary that is nil, or of an
// unknown version, makes readers fall back to the body.
const summaryVersion = 1

const (
	// sumNeedsDecoding: some text part is base64 or quoted-printable or not UTF-8,
	// so BODY/TEXT search must decode it rather than scan the raw bytes.
	sumNeedsDecoding = 1 << iota
	// sumHasDate: the message has a Date header, and the sent day is its day.
	sumHasDate
)

// searchField indexes the NUL-separated search text.
type searchField int

const (
	sfSubject searchField = iota
	sfFrom
	sfTo
	sfCc
	sfBcc
	sfMessageID
	sfInReplyTo
	sfCount
)

// summaryField maps a header name (lower case) to its place in the search text.
func summaryField(name string) (searchField, bool) {
	switch name {
	case "subject":
		return sfSubject, true
	case "from":
		return sfFrom, true
	case "to":
		return sfTo, true
	case "cc":
		return sfCc, true
	case "bcc":
		return sfBcc, true
	case "message-id":
		return sfMessageID, true
	case "in-reply-to":
		return sfInReplyTo, true
	}
	return 0, false
}

// Summarize computes a message's summary; cmd sets it as store.Options.Summarize.
func Summarize(body []byte) []byte {
	hlen := headerLen(body)
	hdr, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body[:hlen])))
	env := envelope(hdr)
	bs := imapserver.ExtractBodyStructure(bytes.NewReader(body))

	var search strings.Builder
	fields := [sfCount]string{
		sfSubject:   env.Subject,
		sfFrom:      addrText(env.From),
		sfTo:        addrText(env.To),
		sfCc:        addrText(env.Cc),
		sfBcc:       addrText(env.Bcc),
		sfMessageID: hdr.Get("Message-Id"),
		sfInReplyTo: hdr.Get("In-Reply-To"),
	}
	for i, f := range fields {
		if i > 0 {
			search.WriteByte(0)
		}
		search.WriteString(strings.ToLower(strings.ReplaceAll(f, "\x00", "")))
	}
	var sentDay int64
	var flags byte
	if !env.Date.IsZero() {
		sentDay = dayOf(env.Date)
		flags |= sumHasDate
	}
	if needsDecoding(bs) {
		flags |= sumNeedsDecoding
	}

	env1, env2 := renderBoth(func(w *wire.Writer) { w.FetchEnvelope(env) }, "ENVELOPE ")
	bs1, bs2 := renderBoth(func(w *wire.Writer) { w.FetchBodyStructure(bs, true) }, "BODYSTRUCTURE ")

	out := make([]byte, 0, 16+search.Len()+len(env1)+len(env2)+len(bs1)+len(bs2))
	out = append(out, summaryVersion)
	out = appendBytes(out, []byte(search.String()))
	out = binary.AppendUvarint(out, uint64(hlen))
	out = append(out, flags)
	out = binary.AppendVarint(out, sentDay)
	out = appendBytes(out, env1)
	out = appendBytes(out, env2)
	out = appendBytes(out, bs1)
	out = appendBytes(out, bs2)
	return out
}

// envelope extracts a message's ENVELOPE; absent Sender and Reply-To default to
// From, as RFC 9051 §7.5.2 asks.
func envelope(hdr textproto.Header) *imap.Envelope {
	env := imapserver.ExtractEnvelope(hdr)
	env.From, env.Sender, env.ReplyTo = addressList(hdr, "From"), addressList(hdr, "Sender"), addressList(hdr, "Reply-To")
	env.To, env.Cc, env.Bcc = addressList(hdr, "To"), addressList(hdr, "Cc"), addressList(hdr, "Bcc")
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}

func appendBytes(out, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// dayOf is the calendar day of t in t's own zone, as days since the epoch, which is
// what SENTON and friends compare (RFC 9051 §6.4.4: time and zone disregarded).
func dayOf(t time.Time) int64 {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// renderer is a reusable in-memory wire.Writer: Summarize runs once per delivered
// message, and a fresh writer per item made most of its garbage.
type renderer struct {
	buf bytes.Buffer
	w   *wire.Writer
}

var renderers = sync.Pool{New: func() any {
	r := &renderer{}
	r.w = wire.NewWriterSize(&r.buf, 1024)
	return r
}}

// renderBoth renders one FETCH item in IMAP4rev1 and in UTF-8 mode and returns the
// value bytes; the second is nil when both are the same.
func renderBoth(write func(*wire.Writer), name string) (rev1, utf8 []byte) {
	r := renderers.Get().(*renderer)
	defer renderers.Put(r)
	render := func(u bool) []byte {
		buf, w := &r.buf, r.w
		buf.Reset()
		w.Reset(buf)
		w.UTF8 = u
		w.FetchStart(1)
		write(w)
		w.FetchEnd()
		_ = w.Flush()
		b := buf.Bytes()
		b = b[len("* 1 FETCH (")+len(name) : len(b)-len(")\r\n")]
		return bytes.Clone(b)
	}
	rev1, utf8 = render(false), render(true)
	if bytes.Equal(rev1, utf8) {
		utf8 = nil
	}
	return rev1, utf8
}

// addrText renders addresses as SEARCH FROM/TO match them: display names and
// addresses both count.
func addrText(l []imap.Address) string {
	var b strings.Builder
	for i, a := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		if a.Name != "" {
			b.WriteString(a.Name)
			b.WriteString(" <")
		}
		b.WriteString(a.Mailbox)
		if a.Host != "" {
			b.WriteByte('@')
			b.WriteString(a.Host)
		}
		if a.Name != "" {
			b.WriteByte('>')
		}
	}
	return b.String()
}

func needsDecoding(bs imap.BodyStructure) bool {
	found := false
	bs.Walk(func(_ []int, p imap.BodyStructure) bool {
		sp, ok := p.(*imap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		switch strings.ToLower(sp.Encoding) {
		case "base64", "quoted-printable":
			found = true
		}
		if cs := strings.ToLower(sp.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "utf8" {
			found = true
		}
		return !found
	})
	return found
}

// headerLen returns the length of the header section, blank line included; a
// message without a blank line is all header.
func headerLen(body []byte) int {
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			return len(body)
		}
		line := body[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i
		}
	}
	return len(body)
}

// summary is a decoded view of a summary's bytes; decoding only slices.
type summary struct {
	search    []byte
	headerLen int
	sentDay   int64 // days since the epoch; valid when hasDate
	hasDate   bool
	flags     byte
	env       [2][]byte // rev1, UTF-8
	bs        [2][]byte
}

// parseSummary decodes b; ok is false for nil, damaged or unknown summaries.
func parseSummary(b []byte) (s summary, ok bool) {
	if len(b) == 0 || b[0] != summaryVersion {
		return s, false
	}
	b = b[1:]
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, true
	}
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	var hl uint64
	if s.search, ok = next(); !ok {
		return s, false
	}
	if hl, ok = num(); !ok || len(b) < 1 {
		return s, false
	}
	s.headerLen, s.flags = int(hl), b[0]
	s.hasDate = s.flags&sumHasDate != 0
	b = b[1:]
	day, k := binary.Varint(b)
	if k <= 0 {
		return s, false
	}
	s.sentDay, b = day, b[k:]
	for _, p := range []*[]byte{&s.env[0], &s.env[1], &s.bs[0], &s.bs[1]} {
		if *p, ok = next(); !ok {
			return s, false
		}
	}
	return s, true
}

// field returns one lower-cased search field.
func (s *summary) field(f searchField) []byte {
	b := s.search
	for i := searchField(0); i < f; i++ {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return nil
		}
		b = b[j+1:]
	}
	if j := bytes.IndexByte(b, 0); j >= 0 {
		b = b[:j]
	}
	return b
}

// envelope returns the pre-rendered ENVELOPE for the mode.
func (s *summary) envelope(utf8 bool) []byte {
	if utf8 && len(s.env[1]) > 0 {
		return s.env[1]
	}
	return s.env[0]
}

// bodyStructure returns the pre-rendered extended BODYSTRUCTURE for the mode.
func (s *summary) bodyStructure(utf8 bool) []byte {
	if utf8 && len(s.bs[1]) > 0 {
		return s.bs[1]
	}
	return s.bs[0]
}
