package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Command is one command read from the client. Its arguments are parsed on
// demand through Args, or all at once by the per-command methods (Fetch,
// Search, Store…).
type Command struct {
	Tag  string
	Name string // upper case; "FETCH" for UID FETCH
	UID  bool   // the command came as UID <Name>
	Args *Args
}

// Args is a cursor over a command's arguments. Its methods consume one
// grammar element each and return an *Error (BAD, tagged) on a mismatch.
type Args struct {
	buf   []byte
	pos   int
	lits  []literal
	li    int
	tag   string
	lim   Limits
	utf8  bool
	depth int
	ntok  int
}

func parseCommand(buf []byte, lits []literal, lim Limits, utf8 bool) (*Command, error) {
	a := &Args{buf: buf, lits: lits, lim: lim, utf8: utf8, tag: "*"}
	start := a.pos
	for a.pos < len(a.buf) && isAStringChar(a.buf[a.pos]) && a.buf[a.pos] != '+' {
		a.pos++
	}
	if a.pos == start || (a.pos < len(a.buf) && a.buf[a.pos] != ' ') {
		return nil, a.errorf("invalid tag")
	}
	a.tag = string(a.buf[start:a.pos])
	cmd := &Command{Tag: a.tag, Args: a}
	if err := a.SP(); err != nil {
		return nil, a.errorf("missing command name")
	}
	name, err := a.Atom()
	if err != nil {
		return nil, a.errorf("missing command name")
	}
	cmd.Name = strings.ToUpper(name)
	if cmd.Name == "UID" {
		if err := a.SP(); err != nil {
			return nil, a.errorf("missing command name after UID")
		}
		name, err := a.Atom()
		if err != nil {
			return nil, a.errorf("missing command name after UID")
		}
		cmd.Name, cmd.UID = strings.ToUpper(name), true
	}
	return cmd, nil
}

// errorf returns a tagged BAD error.
func (a *Args) errorf(format string, args ...any) *Error {
	return &Error{Tag: a.tag, Status: BAD, Text: fmt.Sprintf(format, args...)}
}

// expected returns a BAD error naming what the grammar wanted here.
func (a *Args) expected(what string) *Error {
	if a.pos >= len(a.buf) {
		return a.errorf("syntax error: expected %s at end of command", what)
	}
	return a.errorf("syntax error: expected %s at position %d", what, a.pos+1)
}

func (a *Args) token() error {
	a.ntok++
	if a.ntok > a.lim.MaxArgs {
		return a.errorf("too many arguments (limit %d)", a.lim.MaxArgs)
	}
	return nil
}

// Peek returns the next byte, or 0 at the end of the arguments.
func (a *Args) Peek() byte {
	if a.pos < len(a.buf) {
		return a.buf[a.pos]
	}
	return 0
}

func (a *Args) consume(c byte) bool {
	if a.pos < len(a.buf) && a.buf[a.pos] == c {
		a.pos++
		return true
	}
	return false
}

// AtEnd reports whether only trailing spaces remain.
func (a *Args) AtEnd() bool {
	for i := a.pos; i < len(a.buf); i++ {
		if a.buf[i] != ' ' {
			return false
		}
	}
	return true
}

// MoreArgs reports whether another argument follows (a space and then
// something other than the end of the command).
func (a *Args) MoreArgs() bool {
	return a.Peek() == ' ' && !a.AtEnd()
}

// SP consumes one or more spaces; clients that send two are tolerated.
func (a *Args) SP() error {
	if !a.consume(' ') {
		return a.expected("SP")
	}
	for a.consume(' ') {
	}
	return nil
}

// End checks that no arguments are left; trailing spaces are tolerated.
func (a *Args) End() error {
	if !a.AtEnd() {
		for a.consume(' ') {
		}
		return a.errorf("syntax error: unexpected %q at position %d", clip(a.buf[a.pos:]), a.pos+1)
	}
	a.pos = len(a.buf)
	return nil
}

func clip(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "…"
	}
	return string(b)
}

// Expect consumes the literal text s, case-insensitively.
func (a *Args) Expect(s string) error {
	if len(a.buf)-a.pos < len(s) || !strings.EqualFold(string(a.buf[a.pos:a.pos+len(s)]), s) {
		return a.expected(strconv.Quote(s))
	}
	a.pos += len(s)
	return nil
}

// Atom reads an atom (RFC 9051 atom).
func (a *Args) Atom() (string, error) {
	start := a.pos
	for a.pos < len(a.buf) && isAtomChar(a.buf[a.pos]) {
		a.pos++
	}
	if a.pos == start {
		return "", a.expected("atom")
	}
	return string(a.buf[start:a.pos]), a.token()
}

// AString reads an atom (with ']' allowed), a quoted string or a literal.
func (a *Args) AString() (string, error) {
	if a.Peek() == '"' || a.literalNext() {
		return a.String()
	}
	start := a.pos
	// 8-bit bytes are accepted in atoms because some clients send UTF-8
	// mailbox names unquoted.
	for a.pos < len(a.buf) && (isAStringChar(a.buf[a.pos]) || a.buf[a.pos] >= 0x80) {
		a.pos++
	}
	if a.pos == start {
		return "", a.expected("string")
	}
	return string(a.buf[start:a.pos]), a.token()
}

// String reads a quoted string or a literal.
func (a *Args) String() (string, error) {
	b, err := a.stringBytes(false)
	return string(b), err
}

// NString reads a string or NIL.
func (a *Args) NString() (s string, isNil bool, err error) {
	if a.nilNext() {
		a.pos += 3
		return "", true, a.token()
	}
	s, err = a.String()
	return s, false, err
}

func (a *Args) nilNext() bool {
	if len(a.buf)-a.pos < 3 || !strings.EqualFold(string(a.buf[a.pos:a.pos+3]), "NIL") {
		return false
	}
	return a.pos+3 == len(a.buf) || !isAStringChar(a.buf[a.pos+3])
}

// stringBytes reads a quoted string or a literal; binary (~{n}) literals
// only when allowBinary.
func (a *Args) stringBytes(allowBinary bool) ([]byte, error) {
	if a.Peek() == '"' {
		return a.quoted()
	}
	if a.literalNext() {
		b, _, err := a.literal(allowBinary)
		return b, err
	}
	return nil, a.expected("string")
}

// literalNext reports whether a literal starts here: "{", or "~{" (a literal8). A
// "~" alone is an atom character (RFC 9051 §9: ATOM-CHAR), as in LIST "" ~foo.
func (a *Args) literalNext() bool {
	switch a.Peek() {
	case '{':
		return true
	case '~':
		return a.pos+1 < len(a.buf) && a.buf[a.pos+1] == '{'
	}
	return false
}

func (a *Args) quoted() ([]byte, error) {
	a.pos++ // "
	var out []byte
	for a.pos < len(a.buf) {
		c := a.buf[a.pos]
		a.pos++
		switch c {
		case '"':
			if out == nil {
				out = []byte{}
			}
			return out, a.token()
		case '\\':
			if a.pos >= len(a.buf) || (a.buf[a.pos] != '\\' && a.buf[a.pos] != '"') {
				return nil, a.errorf("syntax error: bad escape in quoted string at position %d", a.pos)
			}
			out = append(out, a.buf[a.pos])
			a.pos++
		case 0:
			return nil, a.errorf("syntax error: NUL in quoted string")
		default:
			out = append(out, c)
		}
	}
	return nil, a.errorf("syntax error: unterminated quoted string")
}

// literal reads a literal whose marker is at the cursor.
func (a *Args) literal(allowBinary bool) (data []byte, binary bool, err error) {
	start := a.pos
	if a.consume('~') {
		if !allowBinary {
			return nil, false, a.errorf("syntax error: binary literal not allowed here")
		}
		binary = true
	}
	if !a.consume('{') {
		return nil, false, a.expected("literal")
	}
	for a.pos < len(a.buf) && a.buf[a.pos] >= '0' && a.buf[a.pos] <= '9' {
		a.pos++
	}
	a.consume('+')
	if !a.consume('}') {
		return nil, false, a.errorf("syntax error: bad literal marker at position %d", start+1)
	}
	if a.li >= len(a.lits) || a.lits[a.li].pos != a.pos {
		return nil, false, a.errorf("syntax error: literal marker must end the line")
	}
	lit := a.lits[a.li]
	a.li++
	return lit.data, binary, a.token()
}

// Number reads a number (RFC 9051 number, 32 bits).
func (a *Args) Number() (uint32, error) {
	n, err := a.number(32)
	return uint32(n), err
}

// Number64 reads a 63-bit number (mod-sequence values, sizes).
func (a *Args) Number64() (uint64, error) {
	return a.number(63)
}

func (a *Args) number(bits int) (uint64, error) {
	start := a.pos
	for a.pos < len(a.buf) && a.buf[a.pos] >= '0' && a.buf[a.pos] <= '9' {
		a.pos++
	}
	if a.pos == start {
		return 0, a.expected("number")
	}
	n, err := strconv.ParseUint(string(a.buf[start:a.pos]), 10, bits)
	if err != nil {
		return 0, a.errorf("syntax error: number out of range at position %d", start+1)
	}
	return n, a.token()
}

// nzNumber reads a non-zero 32-bit number.
func (a *Args) nzNumber() (uint32, error) {
	start := a.pos
	n, err := a.Number()
	if err == nil && n == 0 {
		return 0, a.errorf("syntax error: zero not allowed at position %d", start+1)
	}
	return n, err
}

// SeqSet reads a sequence set of message numbers; "*" is stored as 0 and
// "$" as imap.SearchRes(), as go-imap does.
func (a *Args) SeqSet() (imap.NumSet, error) {
	if a.consume('$') {
		return imap.SearchRes(), a.token()
	}
	var set imap.SeqSet
	err := a.numSet(set.AddRange)
	return set, err
}

// UIDSet reads a set of UIDs ("$" gives imap.SearchRes()).
func (a *Args) UIDSet() (imap.UIDSet, error) {
	if a.consume('$') {
		return imap.SearchRes(), a.token()
	}
	var set imap.UIDSet
	err := a.numSet(func(start, stop uint32) { set.AddRange(imap.UID(start), imap.UID(stop)) })
	return set, err
}

// NumSet reads a UIDSet when uid is set, else a SeqSet.
func (a *Args) NumSet(uid bool) (imap.NumSet, error) {
	if uid {
		return a.UIDSet()
	}
	return a.SeqSet()
}

func (a *Args) numSet(add func(start, stop uint32)) error {
	if err := a.token(); err != nil {
		return err
	}
	for {
		start, err := a.seqNumber()
		if err != nil {
			return err
		}
		stop := start
		if a.consume(':') {
			if stop, err = a.seqNumber(); err != nil {
				return err
			}
		}
		add(start, stop)
		if !a.consume(',') {
			return nil
		}
	}
}

func (a *Args) seqNumber() (uint32, error) {
	if a.consume('*') {
		return 0, nil
	}
	start := a.pos
	for a.pos < len(a.buf) && a.buf[a.pos] >= '0' && a.buf[a.pos] <= '9' {
		a.pos++
	}
	n, err := strconv.ParseUint(string(a.buf[start:a.pos]), 10, 32)
	if a.pos == start || err != nil || n == 0 {
		a.pos = start
		return 0, a.expected("sequence set")
	}
	return uint32(n), nil
}

// List parses "(" elem *(SP elem) ")", calling elem for each element. An
// empty list and spaces before ")" are accepted (Delta Chat sends
// `(/private/devicetoken "1111" )`).
func (a *Args) List(elem func() error) error {
	if !a.consume('(') {
		return a.expected("(")
	}
	a.depth++
	defer func() { a.depth-- }()
	if a.depth > a.lim.MaxDepth {
		return a.errorf("too deeply nested (limit %d)", a.lim.MaxDepth)
	}
	for a.consume(' ') {
	}
	if a.consume(')') {
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		sp := false
		for a.consume(' ') {
			sp = true
		}
		if a.consume(')') {
			return nil
		}
		if !sp || a.pos >= len(a.buf) {
			return a.expected("SP or )")
		}
	}
}

// Flag reads a flag: a keyword atom or "\" atom. System flags are returned
// in their canonical case (\Seen, not \SEEN).
func (a *Args) Flag() (imap.Flag, error) {
	if a.consume('\\') {
		s, err := a.Atom()
		if err != nil {
			return "", err
		}
		return canonicalFlag("\\" + s), nil
	}
	s, err := a.Atom()
	return imap.Flag(s), err
}

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, "\\Recent"}

func canonicalFlag(f string) imap.Flag {
	for _, sf := range systemFlags {
		if strings.EqualFold(string(sf), f) {
			return sf
		}
	}
	return imap.Flag(f)
}

// FlagList reads "(" [flag *(SP flag)] ")".
func (a *Args) FlagList() ([]imap.Flag, error) {
	flags := []imap.Flag{}
	err := a.List(func() error {
		f, err := a.Flag()
		flags = append(flags, f)
		return err
	})
	return flags, err
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Date reads a SEARCH date: d-Mon-yyyy, optionally quoted, as midnight UTC.
func (a *Args) Date() (time.Time, error) {
	quoted := a.consume('"')
	start := a.pos
	for a.pos < len(a.buf) && (isAlnum(a.buf[a.pos]) || a.buf[a.pos] == '-') {
		a.pos++
	}
	t, err := parseDate(string(a.buf[start:a.pos]))
	if err != nil || (quoted && !a.consume('"')) {
		a.pos = start
		return time.Time{}, a.expected("date")
	}
	return t, a.token()
}

func parseDate(s string) (time.Time, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) < 1 || len(parts[0]) > 2 || len(parts[2]) != 4 {
		return time.Time{}, fmt.Errorf("parse date %q: bad form", s)
	}
	day, err1 := strconv.Atoi(parts[0])
	year, err2 := strconv.Atoi(parts[2])
	mon := 0
	for i, m := range months {
		if strings.EqualFold(m, parts[1]) {
			mon = i + 1
		}
	}
	if err1 != nil || err2 != nil || mon == 0 || day < 1 || day > 31 {
		return time.Time{}, fmt.Errorf("parse date %q: bad field", s)
	}
	return time.Date(year, time.Month(mon), day, 0, 0, 0, 0, time.UTC), nil
}

// DateTime reads an APPEND date-time: "dd-Mon-yyyy hh:mm:ss +zzzz".
func (a *Args) DateTime() (time.Time, error) {
	if !a.consume('"') {
		return time.Time{}, a.expected("date-time")
	}
	start := a.pos
	for a.pos < len(a.buf) && a.buf[a.pos] != '"' {
		a.pos++
	}
	s := strings.TrimLeft(string(a.buf[start:a.pos]), " ")
	if !a.consume('"') {
		return time.Time{}, a.errorf("syntax error: unterminated date-time")
	}
	t, err := time.Parse("2-Jan-2006 15:04:05 -0700", s)
	if err != nil {
		a.pos = start - 1
		return time.Time{}, a.expected("date-time")
	}
	return t, a.token()
}

// Mailbox reads a mailbox name: "INBOX" in any case becomes "INBOX", and in
// IMAP4rev1 mode modified UTF-7 is decoded.
func (a *Args) Mailbox() (string, error) {
	start := a.pos
	s, err := a.AString()
	if err != nil {
		return "", err
	}
	return a.decodeMailbox(s, start)
}

func (a *Args) decodeMailbox(s string, start int) (string, error) {
	if strings.EqualFold(s, "INBOX") {
		return "INBOX", nil
	}
	if a.utf8 {
		return s, nil
	}
	d, err := DecodeMUTF7(s)
	if err != nil {
		return "", a.errorf("invalid mailbox name at position %d: %v", start+1, err)
	}
	return d, nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isAtomChar: any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]".
func isAtomChar(c byte) bool {
	if c <= 0x1f || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isAStringChar: ATOM-CHAR or resp-specials ("]").
func isAStringChar(c byte) bool {
	return isAtomChar(c) || c == ']'
}

// isListChar: ATOM-CHAR, list-wildcards or resp-specials.
func isListChar(c byte) bool {
	return isAStringChar(c) || c == '%' || c == '*'
}

// optionList parses a parenthesised list of option atoms (LIST selection options,
// SEARCH RETURN options), setting the flag each one names; an unknown one is a BAD
// naming it as what.
func (a *Args) optionList(what string, opts map[string]*bool) error {
	return a.List(func() error {
		s, err := a.Atom()
		if err != nil {
			return err
		}
		p, ok := opts[strings.ToUpper(s)]
		if !ok {
			return a.errorf("unknown %s %s", what, s)
		}
		*p = true
		return nil
	})
}
