package wire

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Writer writes responses through a buffer. Its methods do not return
// errors: a write error sticks and Flush reports it, so a burst of
// responses is written without an error check per item.
type Writer struct {
	// UTF8 says strings and mailbox names go out as UTF-8 (IMAP4rev2,
	// UTF8=ACCEPT); otherwise mailbox names are modified UTF-7 and strings
	// with 8-bit bytes are sent as literals.
	UTF8 bool

	bw      *bufio.Writer
	scratch [64]byte
	first   bool // no item written yet in the current FETCH response
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 32<<10)}
}

// NewWriterSize is NewWriter with a buffer of size bytes, for short-lived writers
// that render into memory and should not cost a 32 KiB buffer each.
func NewWriterSize(w io.Writer, size int) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, size)}
}

// Reset makes the Writer write to dst (after STARTTLS or COMPRESS); flush
// first, buffered bytes are dropped.
func (w *Writer) Reset(dst io.Writer) { w.bw.Reset(dst) }

// Flush sends buffered responses and reports the first write error.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Raw writes s unchanged.
func (w *Writer) Raw(s string) { w.bw.WriteString(s) }

// SP writes a space.
func (w *Writer) SP() { w.bw.WriteByte(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() { w.bw.WriteString("\r\n") }

// Number writes a decimal number.
func (w *Writer) Number(n uint64) { w.bw.Write(strconv.AppendUint(w.scratch[:0], n, 10)) }

// Atom writes s as an atom; the caller guarantees it is one.
func (w *Writer) Atom(s string) { w.bw.WriteString(s) }

// String writes s as a quoted string when it can be one, else as a literal.
func (w *Writer) String(s string) {
	if quotable(s, w.UTF8) {
		w.quoted(s)
		return
	}
	w.literalString(s)
}

// AString writes s as an atom when it can be one, else as a string.
func (w *Writer) AString(s string) {
	if isAtomString(s) {
		w.bw.WriteString(s)
		return
	}
	w.String(s)
}

// NString writes s as a string, or NIL when s is empty: for envelope and
// body structure fields, where empty and absent mean the same.
func (w *Writer) NString(s string) {
	if s == "" {
		w.bw.WriteString("NIL")
		return
	}
	w.String(s)
}

// Literal writes b as a synchronizing-form literal {n}CRLF, the form
// every client reads; METADATA values and message data always use it.
func (w *Writer) Literal(b []byte) {
	w.bw.WriteByte('{')
	w.Number(uint64(len(b)))
	w.bw.WriteString("}\r\n")
	w.bw.Write(b)
}

func (w *Writer) literalString(s string) {
	w.bw.WriteByte('{')
	w.Number(uint64(len(s)))
	w.bw.WriteString("}\r\n")
	w.bw.WriteString(s)
}

// Literal8 writes b as a binary literal ~{n} when it has a NUL byte, which
// only a literal8 may carry (RFC 3516), else as a literal.
func (w *Writer) Literal8(b []byte) {
	for _, c := range b {
		if c == 0 {
			w.bw.WriteByte('~')
			break
		}
	}
	w.Literal(b)
}

// NLiteral writes b as a literal, or NIL for nil.
func (w *Writer) NLiteral(b []byte) {
	if b == nil {
		w.bw.WriteString("NIL")
		return
	}
	w.Literal(b)
}

func (w *Writer) quoted(s string) {
	w.bw.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.bw.WriteByte('\\')
		}
		w.bw.WriteByte(s[i])
	}
	w.bw.WriteByte('"')
}

// quotable: no CR, LF or NUL; 8-bit only in UTF-8 mode (and then only valid
// UTF-8 is worth quoting); long strings go as literals to keep lines short.
func quotable(s string, utf8 bool) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 || (c >= 0x80 && !utf8) {
			return false
		}
	}
	return true
}

// isAtomString: can s be sent as an atom (astring form) without being
// mistaken for NIL or another token?
func isAtomString(s string) bool {
	if s == "" || strings.EqualFold(s, "NIL") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAStringChar(s[i]) {
			return false
		}
	}
	return true
}

// astringText renders s as an astring would be written, for names built
// ahead of time (a FETCH section's header field list). Strings that need a
// literal are quoted anyway: header field names never do.
func astringText(s string) string {
	if isAtomString(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Mailbox writes a mailbox name: modified UTF-7 unless in UTF-8 mode.
func (w *Writer) Mailbox(name string) {
	if strings.EqualFold(name, "INBOX") {
		w.bw.WriteString("INBOX")
		return
	}
	if !w.UTF8 {
		name = EncodeMUTF7(name)
	}
	w.AString(name)
}

// Flags writes a parenthesised flag list.
func (w *Writer) Flags(flags []imap.Flag) {
	w.bw.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			w.bw.WriteByte(' ')
		}
		w.bw.WriteString(string(f))
	}
	w.bw.WriteByte(')')
}

// Code is a response code, without its brackets: "TRYCREATE",
// "UIDVALIDITY 42". Build parameterised ones with the Code* functions.
type Code string

// Response codes without parameters.
const (
	CodeAlert                Code = "ALERT"
	CodeAlreadyExists        Code = "ALREADYEXISTS"
	CodeAuthenticationFailed Code = "AUTHENTICATIONFAILED"
	CodeAuthorizationFailed  Code = "AUTHORIZATIONFAILED"
	CodeCannot               Code = "CANNOT"
	CodeClientBug            Code = "CLIENTBUG"
	CodeClosed               Code = "CLOSED"
	CodeCompressionActive    Code = "COMPRESSIONACTIVE"
	CodeContactAdmin         Code = "CONTACTADMIN"
	CodeExpired              Code = "EXPIRED"
	CodeExpungeIssued        Code = "EXPUNGEISSUED"
	CodeInUse                Code = "INUSE"
	CodeLimit                Code = "LIMIT"
	CodeMetadataTooMany      Code = "METADATA TOOMANY"
	CodeMetadataNoPrivate    Code = "METADATA NOPRIVATE"
	CodeNoModSeq             Code = "NOMODSEQ"
	CodeNonExistent          Code = "NONEXISTENT"
	CodeNoPerm               Code = "NOPERM"
	CodeOverQuota            Code = "OVERQUOTA"
	CodeParse                Code = "PARSE"
	CodePrivacyRequired      Code = "PRIVACYREQUIRED"
	CodeReadOnly             Code = "READ-ONLY"
	CodeReadWrite            Code = "READ-WRITE"
	CodeServerBug            Code = "SERVERBUG"
	CodeTooBig               Code = "TOOBIG"
	CodeTryCreate            Code = "TRYCREATE"
	CodeUIDNotSticky         Code = "UIDNOTSTICKY"
	CodeUnavailable          Code = "UNAVAILABLE"
)

func codeNum(name string, n uint64) Code {
	return Code(name + " " + strconv.FormatUint(n, 10))
}

// CodeCapability is [CAPABILITY …].
func CodeCapability(caps ...string) Code {
	return Code("CAPABILITY " + strings.Join(caps, " "))
}

// CodeUIDValidity is [UIDVALIDITY n].
func CodeUIDValidity(v uint32) Code { return codeNum("UIDVALIDITY", uint64(v)) }

// CodeUIDNext is [UIDNEXT n].
func CodeUIDNext(uid imap.UID) Code { return codeNum("UIDNEXT", uint64(uid)) }

// CodeUnseen is [UNSEEN n] (IMAP4rev1 SELECT).
func CodeUnseen(seq uint32) Code { return codeNum("UNSEEN", uint64(seq)) }

// CodeHighestModSeq is [HIGHESTMODSEQ n].
func CodeHighestModSeq(m uint64) Code { return codeNum("HIGHESTMODSEQ", m) }

// CodeMetadataMaxSize is [METADATA MAXSIZE n].
func CodeMetadataMaxSize(n uint64) Code { return codeNum("METADATA MAXSIZE", n) }

// CodeMetadataLongEntries is [METADATA LONGENTRIES n].
func CodeMetadataLongEntries(n uint64) Code { return codeNum("METADATA LONGENTRIES", n) }

// CodeAppendUID is [APPENDUID uidvalidity uid].
func CodeAppendUID(validity uint32, uid imap.UID) Code {
	return Code("APPENDUID " + strconv.FormatUint(uint64(validity), 10) + " " + strconv.FormatUint(uint64(uid), 10))
}

// CodeCopyUID is [COPYUID uidvalidity source-uids dest-uids].
func CodeCopyUID(validity uint32, src, dst imap.UIDSet) Code {
	return Code("COPYUID " + strconv.FormatUint(uint64(validity), 10) + " " + src.String() + " " + dst.String())
}

// CodeModified is [MODIFIED set] (STORE UNCHANGEDSINCE failures).
func CodeModified(set imap.NumSet) Code { return Code("MODIFIED " + set.String()) }

// CodePermanentFlags is [PERMANENTFLAGS (…)].
func CodePermanentFlags(flags []imap.Flag) Code {
	s := make([]string, len(flags))
	for i, f := range flags {
		s[i] = string(f)
	}
	return Code("PERMANENTFLAGS (" + strings.Join(s, " ") + ")")
}

// CodeBadCharset is [BADCHARSET (…)].
func CodeBadCharset(charsets ...string) Code {
	return Code("BADCHARSET (" + strings.Join(charsets, " ") + ")")
}

// StatusResponse writes "tag status [code] text" CRLF; tag "*" makes it
// untagged. CR and LF in text are replaced: they would end the response.
func (w *Writer) StatusResponse(tag string, st Status, code Code, text string) {
	w.bw.WriteString(tag)
	w.bw.WriteByte(' ')
	w.bw.WriteString(string(st))
	w.bw.WriteByte(' ')
	if code != "" {
		w.bw.WriteByte('[')
		w.bw.WriteString(string(code))
		w.bw.WriteString("] ")
	}
	if text == "" {
		text = "done"
	}
	if strings.ContainsAny(text, "\r\n") {
		text = strings.NewReplacer("\r", " ", "\n", " ").Replace(text)
	}
	w.bw.WriteString(text)
	w.CRLF()
}

// OK writes a tagged OK.
func (w *Writer) OK(tag string, code Code, text string) { w.StatusResponse(tag, OK, code, text) }

// NO writes a tagged NO.
func (w *Writer) NO(tag string, code Code, text string) { w.StatusResponse(tag, NO, code, text) }

// BAD writes a tagged BAD.
func (w *Writer) BAD(tag string, code Code, text string) { w.StatusResponse(tag, BAD, code, text) }

// Continue writes a continuation request "+ text".
func (w *Writer) Continue(text string) {
	w.bw.WriteString("+ ")
	w.bw.WriteString(text)
	w.CRLF()
}

// Capability writes "* CAPABILITY …".
func (w *Writer) Capability(caps ...string) {
	w.bw.WriteString("* CAPABILITY")
	for _, c := range caps {
		w.bw.WriteByte(' ')
		w.bw.WriteString(c)
	}
	w.CRLF()
}

// Enabled writes "* ENABLED …".
func (w *Writer) Enabled(caps ...string) {
	w.bw.WriteString("* ENABLED")
	for _, c := range caps {
		w.bw.WriteByte(' ')
		w.bw.WriteString(c)
	}
	w.CRLF()
}

func (w *Writer) numResponse(n uint64, word string) {
	w.bw.WriteString("* ")
	w.Number(n)
	w.bw.WriteString(word)
}

// Exists writes "* n EXISTS".
func (w *Writer) Exists(n uint32) { w.numResponse(uint64(n), " EXISTS\r\n") }

// Recent writes "* n RECENT" (IMAP4rev1 only).
func (w *Writer) Recent(n uint32) { w.numResponse(uint64(n), " RECENT\r\n") }

// Expunge writes "* seq EXPUNGE".
func (w *Writer) Expunge(seq uint32) { w.numResponse(uint64(seq), " EXPUNGE\r\n") }

// FlagsResponse writes "* FLAGS (…)".
func (w *Writer) FlagsResponse(flags []imap.Flag) {
	w.bw.WriteString("* FLAGS ")
	w.Flags(flags)
	w.CRLF()
}

// Vanished writes "* VANISHED [(EARLIER)] uids" (RFC 7162 §3.2.10).
func (w *Writer) Vanished(uids imap.UIDSet, earlier bool) {
	w.bw.WriteString("* VANISHED ")
	if earlier {
		w.bw.WriteString("(EARLIER) ")
	}
	w.bw.WriteString(uids.String())
	w.CRLF()
}

// Search writes the IMAP4rev1 "* SEARCH n…" response, with "(MODSEQ m)"
// when modSeq is not zero (RFC 7162 §3.1.5).
func (w *Writer) Search(nums []uint32, modSeq uint64) {
	w.bw.WriteString("* SEARCH")
	for _, n := range nums {
		w.bw.WriteByte(' ')
		w.Number(uint64(n))
	}
	if modSeq != 0 && len(nums) > 0 {
		w.bw.WriteString(" (MODSEQ ")
		w.Number(modSeq)
		w.bw.WriteByte(')')
	}
	w.CRLF()
}

// ESearch writes "* ESEARCH (TAG "t") [UID] …" with the data opts asked
// for (RFC 4731, RFC 9051 §7.3.4). MIN, MAX and ALL are left out when
// nothing matched, as the RFC requires; COUNT 0 is sent.
func (w *Writer) ESearch(tag string, uid bool, opts imap.SearchOptions, data *imap.SearchData) {
	w.bw.WriteString("* ESEARCH (TAG ")
	w.quoted(tag)
	w.bw.WriteByte(')')
	if uid {
		w.bw.WriteString(" UID")
	}
	found := data.Count > 0 || data.Min > 0
	if opts.ReturnMin && found {
		w.bw.WriteString(" MIN ")
		w.Number(uint64(data.Min))
	}
	if opts.ReturnMax && found {
		w.bw.WriteString(" MAX ")
		w.Number(uint64(data.Max))
	}
	if opts.ReturnAll && data.All != nil {
		if s := data.All.String(); s != "" {
			w.bw.WriteString(" ALL ")
			w.bw.WriteString(s)
		}
	}
	if opts.ReturnCount {
		w.bw.WriteString(" COUNT ")
		w.Number(uint64(data.Count))
	}
	if data.ModSeq != 0 {
		w.bw.WriteString(" MODSEQ ")
		w.Number(data.ModSeq)
	}
	w.CRLF()
}

// List writes "* LIST (attrs) delim name [extended items]" (or LSUB when
// cmd is "LSUB"), and then a "* STATUS" response when d.Status is set
// (RFC 5819).
func (w *Writer) List(cmd string, d *imap.ListData) {
	w.bw.WriteString("* ")
	w.bw.WriteString(cmd)
	w.bw.WriteString(" (")
	for i, a := range d.Attrs {
		if i > 0 {
			w.bw.WriteByte(' ')
		}
		w.bw.WriteString(string(a))
	}
	w.bw.WriteString(") ")
	if d.Delim == 0 {
		w.bw.WriteString("NIL")
	} else {
		w.quoted(string(d.Delim))
	}
	w.bw.WriteByte(' ')
	w.Mailbox(d.Mailbox)
	// CHILDINFO's list may not be empty, and SUBSCRIBED is the only
	// criterion there is.
	childInfo := d.ChildInfo != nil && d.ChildInfo.Subscribed
	if childInfo || d.OldName != "" {
		w.bw.WriteString(" (")
		if childInfo {
			w.bw.WriteString(`"CHILDINFO" ("SUBSCRIBED")`)
		}
		if d.OldName != "" {
			if childInfo {
				w.bw.WriteByte(' ')
			}
			w.bw.WriteString(`"OLDNAME" (`)
			w.Mailbox(d.OldName)
			w.bw.WriteByte(')')
		}
		w.bw.WriteByte(')')
	}
	w.CRLF()
	if d.Status != nil {
		w.Status(d.Status)
	}
}

// Status writes "* STATUS name (items)" with the items that are set.
func (w *Writer) Status(d *imap.StatusData) {
	w.bw.WriteString("* STATUS ")
	w.Mailbox(d.Mailbox)
	w.bw.WriteString(" (")
	sep := ""
	item := func(name string, n uint64) {
		w.bw.WriteString(sep)
		w.bw.WriteString(name)
		w.bw.WriteByte(' ')
		w.Number(n)
		sep = " "
	}
	if d.NumMessages != nil {
		item("MESSAGES", uint64(*d.NumMessages))
	}
	if d.NumRecent != nil {
		item("RECENT", uint64(*d.NumRecent))
	}
	if d.UIDNext != 0 {
		item("UIDNEXT", uint64(d.UIDNext))
	}
	if d.UIDValidity != 0 {
		item("UIDVALIDITY", uint64(d.UIDValidity))
	}
	if d.NumUnseen != nil {
		item("UNSEEN", uint64(*d.NumUnseen))
	}
	if d.NumDeleted != nil {
		item("DELETED", uint64(*d.NumDeleted))
	}
	if d.Size != nil {
		item("SIZE", uint64(*d.Size))
	}
	if d.AppendLimit != nil {
		item("APPENDLIMIT", uint64(*d.AppendLimit))
	}
	if d.DeletedStorage != nil {
		item("DELETED-STORAGE", uint64(*d.DeletedStorage))
	}
	if d.HighestModSeq != 0 {
		item("HIGHESTMODSEQ", d.HighestModSeq)
	}
	w.bw.WriteString(")\r\n")
}

// Metadata writes one "* METADATA mailbox (entry value …)" response; each
// value is a synchronizing literal or NIL (RFC 5464 §4.4.1, as Dovecot).
func (w *Writer) Metadata(mailbox string, entries []MetadataEntry) {
	w.bw.WriteString("* METADATA ")
	w.Mailbox(mailbox)
	w.bw.WriteString(" (")
	for i, e := range entries {
		if i > 0 {
			w.bw.WriteByte(' ')
		}
		w.AString(e.Name)
		w.bw.WriteByte(' ')
		if e.Nil {
			w.bw.WriteString("NIL")
		} else {
			w.Literal(e.Value)
		}
	}
	w.bw.WriteString(")\r\n")
}

// QuotaResource is one resource of a QUOTA response; STORAGE is in KiB.
type QuotaResource struct {
	Name         imap.QuotaResourceType
	Usage, Limit int64
}

// Quota writes "* QUOTA root (name usage limit …)".
func (w *Writer) Quota(root string, res []QuotaResource) {
	w.bw.WriteString("* QUOTA ")
	w.AString(root)
	w.bw.WriteString(" (")
	for i, r := range res {
		if i > 0 {
			w.bw.WriteByte(' ')
		}
		w.bw.WriteString(string(r.Name))
		w.bw.WriteByte(' ')
		w.Number(uint64(max(r.Usage, 0)))
		w.bw.WriteByte(' ')
		w.Number(uint64(max(r.Limit, 0)))
	}
	w.bw.WriteString(")\r\n")
}

// QuotaRoot writes "* QUOTAROOT mailbox root…".
func (w *Writer) QuotaRoot(mailbox string, roots ...string) {
	w.bw.WriteString("* QUOTAROOT ")
	w.Mailbox(mailbox)
	for _, r := range roots {
		w.bw.WriteByte(' ')
		w.AString(r)
	}
	w.CRLF()
}

// ID writes "* ID (key value …)" with keys in sorted order, or "* ID NIL"
// for an empty map.
func (w *Writer) ID(params map[string]string) {
	w.bw.WriteString("* ID ")
	w.params(params)
	w.bw.WriteString("\r\n")
}
