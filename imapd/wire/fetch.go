package wire

import (
	"mime"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// FETCH responses are written item by item, straight into the buffer, so
// that a large FETCH costs no allocation per message:
//
//	w.FetchStart(seq)
//	w.FetchUID(uid)
//	w.FetchFlags(flags)
//	w.FetchEnd()

// FetchStart begins "* seq FETCH (".
func (w *Writer) FetchStart(seq uint32) {
	w.bw.WriteString("* ")
	w.Number(uint64(seq))
	w.bw.WriteString(" FETCH (")
	w.first = true
}

// FetchEnd closes the FETCH response.
func (w *Writer) FetchEnd() { w.bw.WriteString(")\r\n") }

// item writes the separator and the item name.
func (w *Writer) item(name string) {
	if !w.first {
		w.bw.WriteByte(' ')
	}
	w.first = false
	w.bw.WriteString(name)
}

// FetchUID writes "UID n".
func (w *Writer) FetchUID(uid imap.UID) {
	w.item("UID ")
	w.Number(uint64(uid))
}

// FetchFlags writes "FLAGS (…)".
func (w *Writer) FetchFlags(flags []imap.Flag) {
	w.item("FLAGS ")
	w.Flags(flags)
}

// FetchRFC822Size writes "RFC822.SIZE n".
func (w *Writer) FetchRFC822Size(n int64) {
	w.item("RFC822.SIZE ")
	w.Number(uint64(max(n, 0)))
}

// FetchModSeq writes "MODSEQ (n)".
func (w *Writer) FetchModSeq(m uint64) {
	w.item("MODSEQ (")
	w.Number(m)
	w.bw.WriteByte(')')
}

// FetchInternalDate writes `INTERNALDATE "dd-Mon-yyyy hh:mm:ss +zzzz"`.
func (w *Writer) FetchInternalDate(t time.Time) {
	w.item("INTERNALDATE ")
	w.bw.WriteByte('"')
	w.bw.Write(t.AppendFormat(w.scratch[:0], "_2-Jan-2006 15:04:05 -0700"))
	w.bw.WriteByte('"')
}

// FetchSection writes a body section: name, "<origin>" for a partial
// fetch, then data as a literal (NIL for nil data). name is
// FetchSection.Name, which echoes the request.
func (w *Writer) FetchSection(name string, partial *imap.SectionPartial, data []byte) {
	w.item(name)
	w.origin(partial)
	w.bw.WriteByte(' ')
	w.NLiteral(data)
}

// FetchBinary writes a BINARY[…] section; data with a NUL byte goes as
// ~{n}.
func (w *Writer) FetchBinary(name string, partial *imap.SectionPartial, data []byte) {
	w.item(name)
	w.origin(partial)
	w.bw.WriteByte(' ')
	if data == nil {
		w.bw.WriteString("NIL")
		return
	}
	w.Literal8(data)
}

func (w *Writer) origin(partial *imap.SectionPartial) {
	if partial != nil {
		w.bw.WriteByte('<')
		w.Number(uint64(partial.Offset))
		w.bw.WriteByte('>')
	}
}

// FetchBinarySize writes "BINARY.SIZE[part] n".
func (w *Writer) FetchBinarySize(name string, size uint32) {
	w.item(name)
	w.bw.WriteByte(' ')
	w.Number(uint64(size))
}

// FetchRaw writes an item whose value was rendered ahead of time, such as an
// ENVELOPE kept since delivery: name (with its trailing space, e.g.
// "ENVELOPE ") and then value unchanged.
func (w *Writer) FetchRaw(name string, value []byte) {
	w.item(name)
	w.bw.Write(value)
}

// FetchEnvelope writes "ENVELOPE (…)".
func (w *Writer) FetchEnvelope(env *imap.Envelope) {
	w.item("ENVELOPE ")
	w.envelope(env)
}

// FetchBodyStructure writes "BODYSTRUCTURE (…)" when extended, else the
// non-extensible "BODY (…)".
func (w *Writer) FetchBodyStructure(bs imap.BodyStructure, extended bool) {
	if extended {
		w.item("BODYSTRUCTURE ")
	} else {
		w.item("BODY ")
	}
	w.bodyStructure(bs, extended)
}

// text writes a header-derived nstring. go-imap decodes encoded words; an
// IMAP4rev1 client expects header text as it was, so non-ASCII text is
// re-encoded rather than sent as 8-bit.
func (w *Writer) text(s string) {
	if !w.UTF8 {
		s = mime.QEncoding.Encode("utf-8", s)
	}
	w.NString(s)
}

func (w *Writer) envelope(env *imap.Envelope) {
	if env == nil {
		env = &imap.Envelope{}
	}
	w.bw.WriteByte('(')
	if env.Date.IsZero() {
		w.bw.WriteString("NIL")
	} else {
		w.bw.WriteByte('"')
		w.bw.Write(env.Date.AppendFormat(w.scratch[:0], "Mon, 02 Jan 2006 15:04:05 -0700"))
		w.bw.WriteByte('"')
	}
	w.bw.WriteByte(' ')
	w.text(env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		w.bw.WriteByte(' ')
		w.addressList(l)
	}
	w.bw.WriteByte(' ')
	if len(env.InReplyTo) == 0 {
		w.bw.WriteString("NIL")
	} else {
		w.String("<" + strings.Join(env.InReplyTo, "> <") + ">")
	}
	w.bw.WriteByte(' ')
	if env.MessageID == "" {
		w.bw.WriteString("NIL")
	} else {
		w.String("<" + env.MessageID + ">")
	}
	w.bw.WriteByte(')')
}

func (w *Writer) addressList(l []imap.Address) {
	if len(l) == 0 {
		w.bw.WriteString("NIL")
		return
	}
	w.bw.WriteByte('(')
	for _, a := range l {
		w.bw.WriteByte('(')
		w.text(a.Name)
		w.bw.WriteString(" NIL ")
		w.NString(a.Mailbox)
		w.bw.WriteByte(' ')
		w.NString(a.Host)
		w.bw.WriteByte(')')
	}
	w.bw.WriteByte(')')
}

// params writes a parenthesised key-value list in sorted key order, or NIL when
// empty: body parameters and the ID response share the form. A parameter without
// a name (`Content-Type: x;*=…` parses to one) is left out: it means nothing, and clients
// (go-imap's imapclient among them) misread an empty key.
func (w *Writer) params(p map[string]string) {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		w.bw.WriteString("NIL")
		return
	}
	sort.Strings(keys)
	w.bw.WriteByte('(')
	for i, k := range keys {
		if i > 0 {
			w.bw.WriteByte(' ')
		}
		w.String(k)
		w.bw.WriteByte(' ')
		w.String(p[k])
	}
	w.bw.WriteByte(')')
}

func (w *Writer) disposition(d *imap.BodyStructureDisposition) {
	if d == nil {
		w.bw.WriteString("NIL")
		return
	}
	w.bw.WriteByte('(')
	w.String(d.Value)
	w.bw.WriteByte(' ')
	w.params(d.Params)
	w.bw.WriteByte(')')
}

func (w *Writer) language(l []string) {
	switch len(l) {
	case 0:
		w.bw.WriteString("NIL")
	case 1:
		w.String(l[0])
	default:
		w.bw.WriteByte('(')
		for i, s := range l {
			if i > 0 {
				w.bw.WriteByte(' ')
			}
			w.String(s)
		}
		w.bw.WriteByte(')')
	}
}

func (w *Writer) bodyStructure(bs imap.BodyStructure, ext bool) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) == 0 {
			// The grammar needs at least one part; say "empty text".
			w.bodyStructure(&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}, ext)
			return
		}
		w.bw.WriteByte('(')
		for _, c := range bs.Children {
			w.bodyStructure(c, ext)
		}
		w.bw.WriteByte(' ')
		w.String(bs.Subtype)
		if ext && bs.Extended != nil {
			w.bw.WriteByte(' ')
			w.params(bs.Extended.Params)
			w.bw.WriteByte(' ')
			w.disposition(bs.Extended.Disposition)
			w.bw.WriteByte(' ')
			w.language(bs.Extended.Language)
			w.bw.WriteByte(' ')
			w.NString(bs.Extended.Location)
		}
		w.bw.WriteByte(')')
	case *imap.BodyStructureSinglePart:
		if bs.Type == "" || bs.Subtype == "" {
			// A Content-Type without type or subtype is invalid, and such a part
			// is text/plain (RFC 2045 §5.2).
			c := *bs
			c.Type, c.Subtype = "text", "plain"
			bs = &c
		}
		w.bw.WriteByte('(')
		w.String(bs.Type)
		w.bw.WriteByte(' ')
		w.String(bs.Subtype)
		w.bw.WriteByte(' ')
		w.params(bs.Params)
		w.bw.WriteByte(' ')
		w.NString(bs.ID)
		w.bw.WriteByte(' ')
		w.text(bs.Description)
		w.bw.WriteByte(' ')
		enc := bs.Encoding
		if enc == "" {
			enc = "7BIT"
		}
		w.String(enc)
		w.bw.WriteByte(' ')
		w.Number(uint64(bs.Size))
		switch {
		case strings.EqualFold(bs.Type, "message") && (strings.EqualFold(bs.Subtype, "rfc822") || strings.EqualFold(bs.Subtype, "global")) && bs.MessageRFC822 != nil:
			m := bs.MessageRFC822
			w.bw.WriteByte(' ')
			w.envelope(m.Envelope)
			w.bw.WriteByte(' ')
			inner := m.BodyStructure
			if inner == nil {
				inner = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}
			}
			w.bodyStructure(inner, ext)
			w.bw.WriteByte(' ')
			w.Number(uint64(max(m.NumLines, 0)))
		case strings.EqualFold(bs.Type, "text"):
			var lines int64
			if bs.Text != nil {
				lines = bs.Text.NumLines
			}
			w.bw.WriteByte(' ')
			w.Number(uint64(max(lines, 0)))
		}
		if ext && bs.Extended != nil {
			w.bw.WriteString(" NIL ") // body-fld-md5: not computed
			w.disposition(bs.Extended.Disposition)
			w.bw.WriteByte(' ')
			w.language(bs.Extended.Language)
			w.bw.WriteByte(' ')
			w.NString(bs.Extended.Location)
		}
		w.bw.WriteByte(')')
	default:
		w.bodyStructure(&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}, ext)
	}
}
