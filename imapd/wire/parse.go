package wire

import (
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// NoArgs checks that the command has no arguments (CAPABILITY, NOOP, IDLE…).
func (c *Command) NoArgs() error { return c.Args.End() }

// Mailbox parses the arguments of a command that takes one mailbox name
// (CREATE, DELETE, SUBSCRIBE, GETQUOTAROOT…).
func (c *Command) Mailbox() (string, error) {
	a := c.Args
	if err := a.SP(); err != nil {
		return "", err
	}
	m, err := a.Mailbox()
	if err != nil {
		return "", err
	}
	return m, a.End()
}

// Rename parses RENAME's two mailbox names.
func (c *Command) Rename() (from, to string, err error) {
	a := c.Args
	if err = a.SP(); err == nil {
		if from, err = a.Mailbox(); err == nil {
			if err = a.SP(); err == nil {
				if to, err = a.Mailbox(); err == nil {
					err = a.End()
				}
			}
		}
	}
	return from, to, err
}

// Login parses LOGIN's user name and password.
func (c *Command) Login() (user, pass string, err error) {
	a := c.Args
	if err = a.SP(); err == nil {
		if user, err = a.AString(); err == nil {
			if err = a.SP(); err == nil {
				if pass, err = a.AString(); err == nil {
					err = a.End()
				}
			}
		}
	}
	return user, pass, err
}

// Authenticate parses AUTHENTICATE's mechanism (upper case) and optional
// initial response (SASL-IR), still base64-encoded; "=" stands for empty.
func (c *Command) Authenticate() (mech string, ir string, hasIR bool, err error) {
	a := c.Args
	if err = a.SP(); err != nil {
		return "", "", false, err
	}
	if mech, err = a.Atom(); err != nil {
		return "", "", false, err
	}
	if a.MoreArgs() {
		_ = a.SP()
		start := a.pos
		for a.pos < len(a.buf) && a.buf[a.pos] != ' ' {
			a.pos++
		}
		ir, hasIR = string(a.buf[start:a.pos]), true
	}
	return strings.ToUpper(mech), ir, hasIR, a.End()
}

// Atoms parses a space-separated list of atoms (ENABLE, COMPRESS), upper case.
func (c *Command) Atoms() ([]string, error) {
	a := c.Args
	var out []string
	for a.MoreArgs() {
		_ = a.SP()
		s, err := a.Atom()
		if err != nil {
			return nil, err
		}
		out = append(out, strings.ToUpper(s))
	}
	if len(out) == 0 {
		return nil, a.expected("SP")
	}
	return out, a.End()
}

// NumSetArg parses a single sequence set (UID EXPUNGE).
func (c *Command) NumSetArg() (imap.NumSet, error) {
	a := c.Args
	if err := a.SP(); err != nil {
		return nil, err
	}
	set, err := a.NumSet(c.UID)
	if err != nil {
		return nil, err
	}
	return set, a.End()
}

// CopyArgs are the arguments of COPY and MOVE.
type CopyArgs struct {
	Set     imap.NumSet
	Mailbox string
}

// Copy parses COPY and MOVE.
func (c *Command) Copy() (*CopyArgs, error) {
	a := c.Args
	var ca CopyArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if ca.Set, err = a.NumSet(c.UID); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if ca.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	return &ca, a.End()
}

// SelectArgs are the arguments of SELECT and EXAMINE.
type SelectArgs struct {
	Mailbox   string
	CondStore bool
	QResync   *QResyncArgs
}

// QResyncArgs is the QRESYNC select parameter (RFC 7162 §3.2.5).
type QResyncArgs struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   imap.UIDSet // nil when absent
	SeqMatch    *SeqMatch   // nil when absent
}

// SeqMatch is QRESYNC's sequence match data: pairs of numbers and UIDs the
// client knows.
type SeqMatch struct {
	SeqNums imap.SeqSet
	UIDs    imap.UIDSet
}

// Select parses SELECT and EXAMINE.
func (c *Command) Select() (*SelectArgs, error) {
	a := c.Args
	var sa SelectArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if sa.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	if a.MoreArgs() {
		_ = a.SP()
		err = a.List(func() error {
			name, err := a.Atom()
			if err != nil {
				return err
			}
			switch strings.ToUpper(name) {
			case "CONDSTORE":
				sa.CondStore = true
				return nil
			case "QRESYNC":
				if err := a.SP(); err != nil {
					return err
				}
				sa.QResync, err = a.qresync()
				return err
			}
			return a.errorf("unknown SELECT parameter %s", name)
		})
		if err != nil {
			return nil, err
		}
	}
	return &sa, a.End()
}

func (a *Args) qresync() (*QResyncArgs, error) {
	var q QResyncArgs
	var n int
	err := a.List(func() error {
		n++
		var err error
		switch n {
		case 1:
			q.UIDValidity, err = a.nzNumber()
		case 2:
			q.ModSeq, err = a.Number64()
		case 3, 4:
			if a.Peek() != '(' {
				if n == 4 {
					return a.expected("(")
				}
				q.KnownUIDs, err = a.UIDSet()
				return err
			}
			n = 4
			q.SeqMatch = &SeqMatch{}
			i := 0
			err = a.List(func() error {
				i++
				var err error
				switch i {
				case 1:
					q.SeqMatch.SeqNums, err = a.seqSetOnly()
				case 2:
					q.SeqMatch.UIDs, err = a.UIDSet()
				default:
					return a.expected(")")
				}
				return err
			})
			if err == nil && i != 2 {
				err = a.errorf("syntax error: QRESYNC sequence match needs two sets")
			}
		default:
			return a.expected(")")
		}
		return err
	})
	if err == nil && n < 2 {
		err = a.errorf("syntax error: QRESYNC needs UIDVALIDITY and MODSEQ")
	}
	return &q, err
}

// seqSetOnly reads a sequence set that may not be "$".
func (a *Args) seqSetOnly() (imap.SeqSet, error) {
	set, err := a.SeqSet()
	if err != nil {
		return nil, err
	}
	s, ok := set.(imap.SeqSet)
	if !ok {
		return nil, a.errorf("syntax error: $ not allowed here")
	}
	return s, nil
}

// StatusItems parses "(" status-att *(SP status-att) ")".
func (a *Args) StatusItems() (*imap.StatusOptions, error) {
	var o imap.StatusOptions
	err := a.List(func() error {
		s, err := a.Atom()
		if err != nil {
			return err
		}
		switch strings.ToUpper(s) {
		case "MESSAGES":
			o.NumMessages = true
		case "RECENT":
			o.NumRecent = true
		case "UIDNEXT":
			o.UIDNext = true
		case "UIDVALIDITY":
			o.UIDValidity = true
		case "UNSEEN":
			o.NumUnseen = true
		case "DELETED":
			o.NumDeleted = true
		case "SIZE":
			o.Size = true
		case "APPENDLIMIT":
			o.AppendLimit = true
		case "DELETED-STORAGE":
			o.DeletedStorage = true
		case "HIGHESTMODSEQ":
			o.HighestModSeq = true
		default:
			return a.errorf("unknown STATUS item %s", s)
		}
		return nil
	})
	return &o, err
}

// StatusArgs are the arguments of STATUS.
type StatusArgs struct {
	Mailbox string
	Items   imap.StatusOptions
}

// Status parses STATUS.
func (c *Command) Status() (*StatusArgs, error) {
	a := c.Args
	var sa StatusArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if sa.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	items, err := a.StatusItems()
	if err != nil {
		return nil, err
	}
	sa.Items = *items
	return &sa, a.End()
}

// ListArgs are the arguments of LIST (with RFC 5258 LIST-EXTENDED, RFC 5819
// LIST-STATUS, RFC 6154 SPECIAL-USE) and LSUB.
type ListArgs struct {
	Reference string
	Patterns  []string
	Options   imap.ListOptions
	// Extended is set when the client used selection options, return
	// options or several patterns: the reply may then carry extended data
	// items such as CHILDINFO.
	Extended bool
}

// List parses LIST and LSUB.
func (c *Command) List() (*ListArgs, error) {
	a := c.Args
	var la ListArgs
	if err := a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' && c.Name == "LIST" {
		la.Extended = true
		err := a.optionList("LIST selection option", map[string]*bool{
			"SUBSCRIBED":     &la.Options.SelectSubscribed,
			"REMOTE":         &la.Options.SelectRemote,
			"RECURSIVEMATCH": &la.Options.SelectRecursiveMatch,
			"SPECIAL-USE":    &la.Options.SelectSpecialUse,
		})
		if err != nil {
			return nil, err
		}
		if la.Options.SelectRecursiveMatch && !la.Options.SelectSubscribed && !la.Options.SelectSpecialUse {
			return nil, a.errorf("RECURSIVEMATCH needs another selection option")
		}
		if err := a.SP(); err != nil {
			return nil, err
		}
	}
	ref, err := a.Mailbox()
	if err != nil {
		return nil, err
	}
	la.Reference = ref
	if err := a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' && c.Name == "LIST" {
		la.Extended = true
		err = a.List(func() error {
			p, err := a.listMailbox()
			la.Patterns = append(la.Patterns, p)
			return err
		})
	} else {
		var p string
		p, err = a.listMailbox()
		la.Patterns = []string{p}
	}
	if err != nil {
		return nil, err
	}
	if a.MoreArgs() && c.Name == "LIST" {
		_ = a.SP()
		if err := a.Expect("RETURN"); err != nil {
			return nil, err
		}
		if err := a.SP(); err != nil {
			return nil, err
		}
		la.Extended = true
		err := a.List(func() error {
			s, err := a.Atom()
			if err != nil {
				return err
			}
			switch strings.ToUpper(s) {
			case "SUBSCRIBED":
				la.Options.ReturnSubscribed = true
			case "CHILDREN":
				la.Options.ReturnChildren = true
			case "SPECIAL-USE":
				la.Options.ReturnSpecialUse = true
			case "STATUS":
				if err := a.SP(); err != nil {
					return err
				}
				la.Options.ReturnStatus, err = a.StatusItems()
				return err
			default:
				return a.errorf("unknown LIST return option %s", s)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return &la, a.End()
}

// listMailbox reads a LIST pattern: 1*list-char or a string.
func (a *Args) listMailbox() (string, error) {
	start := a.pos
	var s string
	switch {
	case a.Peek() == '"' || a.literalNext():
		var err error
		if s, err = a.String(); err != nil {
			return "", err
		}
	default:
		for a.pos < len(a.buf) && (isListChar(a.buf[a.pos]) || a.buf[a.pos] >= 0x80) {
			a.pos++
		}
		if a.pos == start {
			return "", a.expected("mailbox pattern")
		}
		s = string(a.buf[start:a.pos])
		if err := a.token(); err != nil {
			return "", err
		}
	}
	if a.utf8 {
		return s, nil
	}
	d, err := DecodeMUTF7(s)
	if err != nil {
		return "", a.errorf("invalid mailbox pattern at position %d: %v", start+1, err)
	}
	return d, nil
}

// AppendArgs are the arguments of APPEND (one message; no CATENATE).
type AppendArgs struct {
	Mailbox string
	Flags   []imap.Flag
	Date    time.Time // zero when absent
	Message []byte
	Binary  bool // sent as ~{n} (RFC 3516)
	UTF8    bool // sent as UTF8 (~{n}) (RFC 6855)
}

// Append parses APPEND.
func (c *Command) Append() (*AppendArgs, error) {
	a := c.Args
	var aa AppendArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if aa.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' {
		if aa.Flags, err = a.FlagList(); err != nil {
			return nil, err
		}
		if err = a.SP(); err != nil {
			return nil, err
		}
	}
	if a.Peek() == '"' {
		if aa.Date, err = a.DateTime(); err != nil {
			return nil, err
		}
		if err = a.SP(); err != nil {
			return nil, err
		}
	}
	// RFC 6855: `UTF8 (~{n}...)` carries a message with UTF-8 headers, which
	// UTF8=ACCEPT (advertised) promises to take.
	if p := a.Peek(); p == 'U' || p == 'u' {
		if err = a.Expect("UTF8 ("); err != nil {
			return nil, err
		}
		aa.UTF8 = true
	}
	if !a.literalNext() {
		return nil, a.expected("message literal")
	}
	if aa.Message, aa.Binary, err = a.literal(true); err != nil {
		return nil, err
	}
	if aa.UTF8 {
		if err = a.Expect(")"); err != nil {
			return nil, err
		}
	}
	if a.MoreArgs() {
		return nil, a.errorf("MULTIAPPEND is not supported")
	}
	return &aa, a.End()
}

// StoreArgs are the arguments of STORE.
type StoreArgs struct {
	Set   imap.NumSet
	Flags imap.StoreFlags
	// UnchangedSince is the CONDSTORE UNCHANGEDSINCE modifier; 0 is a valid
	// value, so HasUnchangedSince tells whether it was given.
	UnchangedSince    uint64
	HasUnchangedSince bool
}

// Store parses STORE.
func (c *Command) Store() (*StoreArgs, error) {
	a := c.Args
	var sa StoreArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if sa.Set, err = a.NumSet(c.UID); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' {
		err = a.List(func() error {
			if err := a.Expect("UNCHANGEDSINCE"); err != nil {
				return err
			}
			if err := a.SP(); err != nil {
				return err
			}
			sa.HasUnchangedSince = true
			sa.UnchangedSince, err = a.Number64()
			return err
		})
		if err != nil {
			return nil, err
		}
		if err = a.SP(); err != nil {
			return nil, err
		}
	}
	item, err := a.Atom()
	if err != nil {
		return nil, err
	}
	item = strings.ToUpper(item)
	switch {
	case strings.HasPrefix(item, "+"):
		sa.Flags.Op, item = imap.StoreFlagsAdd, item[1:]
	case strings.HasPrefix(item, "-"):
		sa.Flags.Op, item = imap.StoreFlagsDel, item[1:]
	default:
		sa.Flags.Op = imap.StoreFlagsSet
	}
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		sa.Flags.Silent = true
	default:
		return nil, a.errorf("syntax error: unknown STORE item %s", item)
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' {
		if sa.Flags.Flags, err = a.FlagList(); err != nil {
			return nil, err
		}
	} else {
		for {
			f, err := a.Flag()
			if err != nil {
				return nil, err
			}
			sa.Flags.Flags = append(sa.Flags.Flags, f)
			if !a.MoreArgs() {
				break
			}
			_ = a.SP()
		}
	}
	return &sa, a.End()
}

// MetadataEntry is one entry of SETMETADATA or of a METADATA response.
type MetadataEntry struct {
	Name  string
	Value []byte
	Nil   bool // NIL value: delete on SET, absent on GET
}

// Metadata depth values (RFC 5464 §4.2.2).
const (
	DepthZero     = 0
	DepthOne      = 1
	DepthInfinity = -1
)

// GetMetadataArgs are the arguments of GETMETADATA.
type GetMetadataArgs struct {
	Mailbox string
	Entries []string
	Depth   int   // DepthZero, DepthOne or DepthInfinity
	MaxSize int64 // -1 when no MAXSIZE was given
}

// GetMetadata parses GETMETADATA [(options)] mailbox entry-or-list.
func (c *Command) GetMetadata() (*GetMetadataArgs, error) {
	a := c.Args
	ga := GetMetadataArgs{MaxSize: -1}
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' {
		if err = a.getMetadataOptions(&ga); err != nil {
			return nil, err
		}
		if err = a.SP(); err != nil {
			return nil, err
		}
	}
	if ga.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' && a.optionsAhead() {
		// go-imap's client puts the options after the mailbox.
		if err = a.getMetadataOptions(&ga); err != nil {
			return nil, err
		}
		if err = a.SP(); err != nil {
			return nil, err
		}
	}
	if a.Peek() == '(' {
		err = a.List(func() error {
			e, err := a.AString()
			ga.Entries = append(ga.Entries, e)
			return err
		})
	} else {
		var e string
		e, err = a.AString()
		ga.Entries = []string{e}
	}
	if err != nil {
		return nil, err
	}
	if len(ga.Entries) == 0 {
		return nil, a.errorf("syntax error: no entries")
	}
	return &ga, a.End()
}

func (a *Args) getMetadataOptions(ga *GetMetadataArgs) error {
	return a.List(func() error {
		s, err := a.Atom()
		if err != nil {
			return err
		}
		if err := a.SP(); err != nil {
			return err
		}
		switch strings.ToUpper(s) {
		case "MAXSIZE":
			n, err := a.Number()
			ga.MaxSize = int64(n)
			return err
		case "DEPTH":
			d, err := a.Atom()
			if err != nil {
				return err
			}
			switch strings.ToLower(d) {
			case "0":
				ga.Depth = DepthZero
			case "1":
				ga.Depth = DepthOne
			case "infinity":
				ga.Depth = DepthInfinity
			default:
				return a.errorf("syntax error: DEPTH must be 0, 1 or infinity")
			}
			return nil
		}
		return a.errorf("unknown GETMETADATA option %s", s)
	})
}

// optionsAhead reports whether the list at the cursor holds GETMETADATA
// options rather than entries, which are paths starting with "/".
func (a *Args) optionsAhead() bool {
	save := a.pos
	defer func() { a.pos = save }()
	a.pos++
	for a.consume(' ') {
	}
	return a.peekWord("MAXSIZE") || a.peekWord("DEPTH")
}

// SetMetadataArgs are the arguments of SETMETADATA.
type SetMetadataArgs struct {
	Mailbox string
	Entries []MetadataEntry
}

// SetMetadata parses SETMETADATA mailbox (entry value …).
func (c *Command) SetMetadata() (*SetMetadataArgs, error) {
	a := c.Args
	var sa SetMetadataArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if sa.Mailbox, err = a.Mailbox(); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	err = a.List(func() error {
		var e MetadataEntry
		var err error
		if e.Name, err = a.AString(); err != nil {
			return err
		}
		if err = a.SP(); err != nil {
			return err
		}
		switch c := a.Peek(); {
		case a.nilNext():
			a.pos += 3
			e.Nil = true
		case c == '"' || a.literalNext():
			if e.Value, err = a.stringBytes(true); err != nil {
				return err
			}
		default:
			// RFC 5464 asks for a string, but COI clients send atoms (coi spec §9:
			// "enabled yes"), and Dovecot takes them.
			v, err := a.Atom()
			if err != nil {
				return err
			}
			e.Value = []byte(v)
		}
		sa.Entries = append(sa.Entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(sa.Entries) == 0 {
		return nil, a.errorf("syntax error: no entries")
	}
	return &sa, a.End()
}

// ID parses ID's parameter list (RFC 2971). Keys are lower-cased; NIL
// values are left out. A NIL list gives an empty map.
func (c *Command) ID() (map[string]string, error) {
	a := c.Args
	if err := a.SP(); err != nil {
		return nil, err
	}
	params := map[string]string{}
	if a.nilNext() {
		a.pos += 3
		return params, a.End()
	}
	var key string
	var n int
	err := a.List(func() error {
		n++
		var err error
		if n%2 == 1 {
			key, err = a.String()
			return err
		}
		v, isNil, err := a.NString()
		if !isNil {
			params[strings.ToLower(key)] = v
		}
		return err
	})
	if err == nil && n%2 == 1 {
		err = a.errorf("syntax error: ID key without value")
	}
	if err != nil {
		return nil, err
	}
	return params, a.End()
}

// SearchArgs are the arguments of SEARCH.
type SearchArgs struct {
	// Return holds the RETURN options; ESearch is set when RETURN was
	// given, which asks for an ESEARCH reply (RFC 4731). "RETURN ()" means ALL.
	Return   imap.SearchOptions
	ESearch  bool
	Charset  string // upper case; empty when absent
	Criteria imap.SearchCriteria
}

// Search parses SEARCH.
func (c *Command) Search() (*SearchArgs, error) {
	a := c.Args
	var sa SearchArgs
	if err := a.SP(); err != nil {
		return nil, err
	}
	if a.peekWord("RETURN") {
		a.pos += len("RETURN")
		sa.ESearch = true
		if err := a.SP(); err != nil {
			return nil, err
		}
		err := a.optionList("SEARCH return option", map[string]*bool{
			"MIN":   &sa.Return.ReturnMin,
			"MAX":   &sa.Return.ReturnMax,
			"ALL":   &sa.Return.ReturnAll,
			"COUNT": &sa.Return.ReturnCount,
			"SAVE":  &sa.Return.ReturnSave,
		})
		if err != nil {
			return nil, err
		}
		r := sa.Return
		if !r.ReturnMin && !r.ReturnMax && !r.ReturnAll && !r.ReturnCount && !r.ReturnSave {
			sa.Return.ReturnAll = true
		}
		if err := a.SP(); err != nil {
			return nil, err
		}
	}
	if a.peekWord("CHARSET") {
		a.pos += len("CHARSET")
		if err := a.SP(); err != nil {
			return nil, err
		}
		cs, err := a.AString()
		if err != nil {
			return nil, err
		}
		sa.Charset = strings.ToUpper(cs)
		if err := a.SP(); err != nil {
			return nil, err
		}
	}
	for {
		if err := a.searchKey(&sa.Criteria, c.UID); err != nil {
			return nil, err
		}
		if !a.MoreArgs() {
			break
		}
		_ = a.SP()
	}
	return &sa, a.End()
}

// peekWord reports whether the atom at the cursor is w (case-insensitive).
func (a *Args) peekWord(w string) bool {
	end := a.pos + len(w)
	if end > len(a.buf) || !strings.EqualFold(string(a.buf[a.pos:end]), w) {
		return false
	}
	return end == len(a.buf) || !isAtomChar(a.buf[end])
}

// searchKey parses one search key into c, which it narrows (AND).
func (a *Args) searchKey(c *imap.SearchCriteria, uid bool) error {
	a.depth++
	defer func() { a.depth-- }()
	if a.depth > a.lim.MaxDepth {
		return a.errorf("search keys too deeply nested (limit %d)", a.lim.MaxDepth)
	}
	switch p := a.Peek(); {
	case p == '(':
		return a.List(func() error { return a.searchKey(c, uid) })
	case p == '*' || p == '$' || (p >= '0' && p <= '9'):
		set, err := a.SeqSet()
		if err != nil {
			return err
		}
		if imap.IsSearchRes(set) {
			// "$" is the saved result whatever the command; it is a UID set.
			c.UID = append(c.UID, set.(imap.UIDSet))
		} else {
			c.SeqNum = append(c.SeqNum, set.(imap.SeqSet))
		}
		return nil
	}
	key, err := a.Atom()
	if err != nil {
		return a.expected("search key")
	}
	key = strings.ToUpper(key)
	flagKey := func(f imap.Flag, not bool) {
		if not {
			c.NotFlag = append(c.NotFlag, f)
		} else {
			c.Flag = append(c.Flag, f)
		}
	}
	switch key {
	case "ALL":
	case "ANSWERED", "UNANSWERED":
		flagKey(imap.FlagAnswered, key[0] == 'U')
	case "DELETED", "UNDELETED":
		flagKey(imap.FlagDeleted, key[0] == 'U')
	case "DRAFT", "UNDRAFT":
		flagKey(imap.FlagDraft, key[0] == 'U')
	case "FLAGGED", "UNFLAGGED":
		flagKey(imap.FlagFlagged, key[0] == 'U')
	case "SEEN", "UNSEEN":
		flagKey(imap.FlagSeen, key[0] == 'U')
	case "RECENT":
		flagKey("\\Recent", false)
	case "OLD":
		flagKey("\\Recent", true)
	case "NEW":
		flagKey("\\Recent", false)
		flagKey(imap.FlagSeen, true)
	case "KEYWORD", "UNKEYWORD":
		if err := a.SP(); err != nil {
			return err
		}
		f, err := a.Flag()
		if err != nil {
			return err
		}
		flagKey(f, key[0] == 'U')
	case "BCC", "CC", "FROM", "SUBJECT", "TO", "BODY", "TEXT":
		if err := a.SP(); err != nil {
			return err
		}
		s, err := a.AString()
		if err != nil {
			return err
		}
		switch key {
		case "BODY":
			c.Body = append(c.Body, s)
		case "TEXT":
			c.Text = append(c.Text, s)
		default:
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: headerKey(key), Value: s})
		}
	case "HEADER":
		if err := a.SP(); err != nil {
			return err
		}
		k, err := a.AString()
		if err != nil {
			return err
		}
		if err := a.SP(); err != nil {
			return err
		}
		v, err := a.AString()
		if err != nil {
			return err
		}
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: k, Value: v})
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		if err := a.SP(); err != nil {
			return err
		}
		d, err := a.Date()
		if err != nil {
			return err
		}
		since, before := &c.Since, &c.Before
		if strings.HasPrefix(key, "SENT") {
			since, before = &c.SentSince, &c.SentBefore
			key = key[4:]
		}
		switch key {
		case "BEFORE":
			narrowBefore(before, d)
		case "SINCE":
			narrowSince(since, d)
		case "ON":
			narrowSince(since, d)
			narrowBefore(before, d.AddDate(0, 0, 1))
		}
	case "LARGER", "SMALLER":
		if err := a.SP(); err != nil {
			return err
		}
		n, err := a.Number64()
		if err != nil {
			return err
		}
		if key == "LARGER" && int64(n) > c.Larger {
			c.Larger = int64(n)
		}
		if key == "SMALLER" && (c.Smaller == 0 || int64(n) < c.Smaller) {
			c.Smaller = int64(n)
		}
	case "UID":
		if err := a.SP(); err != nil {
			return err
		}
		set, err := a.UIDSet()
		if err != nil {
			return err
		}
		c.UID = append(c.UID, set)
	case "NOT":
		if err := a.SP(); err != nil {
			return err
		}
		var n imap.SearchCriteria
		if err := a.searchKey(&n, uid); err != nil {
			return err
		}
		c.Not = append(c.Not, n)
	case "OR":
		var pair [2]imap.SearchCriteria
		for i := range pair {
			if err := a.SP(); err != nil {
				return err
			}
			if err := a.searchKey(&pair[i], uid); err != nil {
				return err
			}
		}
		c.Or = append(c.Or, pair)
	case "MODSEQ":
		if err := a.SP(); err != nil {
			return err
		}
		m := &imap.SearchCriteriaModSeq{}
		if a.Peek() == '"' {
			name, err := a.String()
			if err != nil {
				return err
			}
			if err := a.SP(); err != nil {
				return err
			}
			t, err := a.Atom()
			if err != nil {
				return err
			}
			m.MetadataName = name
			switch typ := imap.SearchCriteriaMetadataType(strings.ToLower(t)); typ {
			case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
				m.MetadataType = typ
			default:
				return a.errorf("syntax error: MODSEQ entry type must be priv, shared or all")
			}
			if err := a.SP(); err != nil {
				return err
			}
		}
		n, err := a.Number64()
		if err != nil {
			return err
		}
		m.ModSeq = n
		if c.ModSeq == nil || n > c.ModSeq.ModSeq {
			c.ModSeq = m
		}
	default:
		return a.errorf("unknown search key %s", key)
	}
	return nil
}

func headerKey(key string) string {
	switch key {
	case "BCC":
		return "Bcc"
	case "CC":
		return "Cc"
	case "FROM":
		return "From"
	case "SUBJECT":
		return "Subject"
	}
	return "To"
}

func narrowSince(t *time.Time, d time.Time) {
	if t.IsZero() || d.After(*t) {
		*t = d
	}
}

func narrowBefore(t *time.Time, d time.Time) {
	if t.IsZero() || d.Before(*t) {
		*t = d
	}
}

// FetchArgs are the arguments of FETCH.
type FetchArgs struct {
	Set imap.NumSet
	// Options says what to fetch, in go-imap's form. UID is set for UID
	// FETCH, ModSeq when CHANGEDSINCE is given (RFC 7162 §3.1.4.1).
	Options imap.FetchOptions
	// Sections lists the BODY[], BINARY[] and BINARY.SIZE[] items (and
	// RFC822, RFC822.HEADER, RFC822.TEXT) in request order, each with the
	// name the response must echo. The same items are in Options.
	Sections []FetchSection
	// HasChangedSince tells a CHANGEDSINCE 0 from none.
	HasChangedSince bool
	Vanished        bool // (VANISHED) modifier (QRESYNC)
}

// FetchSection is one requested body section.
type FetchSection struct {
	// Name is the item name for the response, as requested but without
	// .PEEK and without the partial range: e.g.
	// "BODY[HEADER.FIELDS (MESSAGE-ID DATE)]", "BINARY[1.2]", "RFC822".
	Name       string
	Body       *imap.FetchItemBodySection       // BODY[…], RFC822*
	Binary     *imap.FetchItemBinarySection     // BINARY[…]
	BinarySize *imap.FetchItemBinarySectionSize // BINARY.SIZE[…]
}

// Partial returns the requested byte range, or nil.
func (s *FetchSection) Partial() *imap.SectionPartial {
	switch {
	case s.Body != nil:
		return s.Body.Partial
	case s.Binary != nil:
		return s.Binary.Partial
	}
	return nil
}

// Fetch parses FETCH.
func (c *Command) Fetch() (*FetchArgs, error) {
	a := c.Args
	var fa FetchArgs
	var err error
	if err = a.SP(); err != nil {
		return nil, err
	}
	if fa.Set, err = a.NumSet(c.UID); err != nil {
		return nil, err
	}
	if err = a.SP(); err != nil {
		return nil, err
	}
	if a.Peek() == '(' {
		err = a.List(func() error { return a.fetchAtt(&fa) })
	} else {
		err = a.fetchAtt(&fa)
	}
	if err != nil {
		return nil, err
	}
	if a.MoreArgs() {
		_ = a.SP()
		err = a.List(func() error {
			s, err := a.Atom()
			if err != nil {
				return err
			}
			switch strings.ToUpper(s) {
			case "CHANGEDSINCE":
				if err := a.SP(); err != nil {
					return err
				}
				fa.Options.ChangedSince, err = a.Number64()
				fa.HasChangedSince, fa.Options.ModSeq = true, true
				return err
			case "VANISHED":
				fa.Vanished = true
				return nil
			}
			return a.errorf("unknown FETCH modifier %s", s)
		})
		if err != nil {
			return nil, err
		}
		if fa.Vanished && (!c.UID || !fa.HasChangedSince) {
			return nil, a.errorf("VANISHED needs UID FETCH and CHANGEDSINCE")
		}
	}
	if c.UID {
		fa.Options.UID = true
	}
	return &fa, a.End()
}

func (a *Args) fetchAtt(fa *FetchArgs) error {
	start := a.pos
	for a.pos < len(a.buf) && (isAlnum(a.buf[a.pos]) || a.buf[a.pos] == '.') {
		a.pos++
	}
	name := strings.ToUpper(string(a.buf[start:a.pos]))
	if err := a.token(); err != nil {
		return err
	}
	o := &fa.Options
	addBody := func(name string, s *imap.FetchItemBodySection) {
		o.BodySection = append(o.BodySection, s)
		fa.Sections = append(fa.Sections, FetchSection{Name: name, Body: s})
	}
	switch name {
	case "ALL", "FAST", "FULL":
		o.Flags, o.InternalDate, o.RFC822Size = true, true, true
		if name != "FAST" {
			o.Envelope = true
		}
		if name == "FULL" && o.BodyStructure == nil {
			o.BodyStructure = &imap.FetchItemBodyStructure{}
		}
	case "FLAGS":
		o.Flags = true
	case "UID":
		o.UID = true
	case "INTERNALDATE":
		o.InternalDate = true
	case "RFC822.SIZE":
		o.RFC822Size = true
	case "ENVELOPE":
		o.Envelope = true
	case "MODSEQ":
		o.ModSeq = true
	case "BODYSTRUCTURE":
		o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
	case "RFC822":
		addBody("RFC822", &imap.FetchItemBodySection{})
	case "RFC822.HEADER":
		addBody("RFC822.HEADER", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true})
	case "RFC822.TEXT":
		addBody("RFC822.TEXT", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
	case "BODY", "BODY.PEEK":
		if a.Peek() != '[' {
			if name == "BODY.PEEK" {
				return a.expected("[")
			}
			if o.BodyStructure == nil {
				o.BodyStructure = &imap.FetchItemBodyStructure{}
			}
			return nil
		}
		s := &imap.FetchItemBodySection{Peek: name == "BODY.PEEK"}
		sec, err := a.bodySection(s)
		if err != nil {
			return err
		}
		if s.Partial, err = a.partial(); err != nil {
			return err
		}
		addBody("BODY"+sec, s)
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		part, sec, err := a.binarySection()
		if err != nil {
			return err
		}
		if name == "BINARY.SIZE" {
			s := &imap.FetchItemBinarySectionSize{Part: part}
			o.BinarySectionSize = append(o.BinarySectionSize, s)
			fa.Sections = append(fa.Sections, FetchSection{Name: "BINARY.SIZE" + sec, BinarySize: s})
			return nil
		}
		s := &imap.FetchItemBinarySection{Part: part, Peek: name == "BINARY.PEEK"}
		if s.Partial, err = a.partial(); err != nil {
			return err
		}
		o.BinarySection = append(o.BinarySection, s)
		fa.Sections = append(fa.Sections, FetchSection{Name: "BINARY" + sec, Binary: s})
	default:
		a.pos = start
		return a.expected("fetch attribute")
	}
	return nil
}

// sectionPart reads nz-number *("." nz-number), stopping before a "." that
// is followed by a letter (the section text).
func (a *Args) sectionPart() ([]int, error) {
	var part []int
	for a.Peek() >= '0' && a.Peek() <= '9' {
		n, err := a.nzNumber()
		if err != nil {
			return nil, err
		}
		part = append(part, int(n))
		if a.Peek() != '.' || a.pos+1 >= len(a.buf) || a.buf[a.pos+1] < '0' || a.buf[a.pos+1] > '9' {
			break
		}
		a.pos++
	}
	return part, nil
}

func partString(part []int) string {
	var b strings.Builder
	for i, p := range part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// bodySection reads "[" section-spec "]" into s and returns the section as
// the response must name it, brackets included.
func (a *Args) bodySection(s *imap.FetchItemBodySection) (string, error) {
	a.pos++ // [
	part, err := a.sectionPart()
	if err != nil {
		return "", err
	}
	s.Part = part
	var name strings.Builder
	name.WriteByte('[')
	name.WriteString(partString(part))
	if len(part) > 0 && a.Peek() == '.' {
		a.pos++
		name.WriteByte('.')
	} else if len(part) > 0 && a.Peek() != ']' {
		return "", a.expected("]")
	}
	if a.Peek() != ']' {
		start := a.pos
		for a.pos < len(a.buf) && (isAlnum(a.buf[a.pos]) || a.buf[a.pos] == '.') {
			a.pos++
		}
		spec := strings.ToUpper(string(a.buf[start:a.pos]))
		name.WriteString(spec)
		switch spec {
		case "HEADER":
			s.Specifier = imap.PartSpecifierHeader
		case "TEXT":
			s.Specifier = imap.PartSpecifierText
		case "MIME":
			if len(part) == 0 {
				return "", a.errorf("syntax error: MIME needs a part number")
			}
			s.Specifier = imap.PartSpecifierMIME
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			s.Specifier = imap.PartSpecifierHeader
			if err := a.SP(); err != nil {
				return "", err
			}
			var fields []string
			err := a.List(func() error {
				f, err := a.AString()
				fields = append(fields, f)
				return err
			})
			if err != nil {
				return "", err
			}
			if len(fields) == 0 {
				return "", a.errorf("syntax error: empty header field list")
			}
			if spec == "HEADER.FIELDS" {
				s.HeaderFields = fields
			} else {
				s.HeaderFieldsNot = fields
			}
			name.WriteString(" (")
			for i, f := range fields {
				if i > 0 {
					name.WriteByte(' ')
				}
				name.WriteString(astringText(f))
			}
			name.WriteByte(')')
		default:
			a.pos = start
			return "", a.expected("section")
		}
	}
	if !a.consume(']') {
		return "", a.expected("]")
	}
	name.WriteByte(']')
	return name.String(), nil
}

// binarySection reads "[" [section-part] "]".
func (a *Args) binarySection() ([]int, string, error) {
	if !a.consume('[') {
		return nil, "", a.expected("[")
	}
	part, err := a.sectionPart()
	if err != nil {
		return nil, "", err
	}
	if !a.consume(']') {
		return nil, "", a.expected("]")
	}
	return part, "[" + partString(part) + "]", nil
}

// partial reads an optional "<" offset "." size ">".
func (a *Args) partial() (*imap.SectionPartial, error) {
	if !a.consume('<') {
		return nil, nil
	}
	off, err := a.Number()
	if err != nil {
		return nil, err
	}
	if !a.consume('.') {
		return nil, a.expected(".")
	}
	size, err := a.nzNumber()
	if err != nil {
		return nil, err
	}
	if !a.consume('>') {
		return nil, a.expected(">")
	}
	return &imap.SectionPartial{Offset: int64(off), Size: int64(size)}, nil
}
