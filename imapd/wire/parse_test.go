package wire

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func command(t *testing.T, input string, utf8 bool) *Command {
	t.Helper()
	r := NewReader(strings.NewReader(input), Limits{MaxDepth: 8})
	r.UTF8 = utf8
	cmd, err := r.ReadCommand(context.Background())
	if err != nil {
		t.Fatalf("ReadCommand(%q): %v", input, err)
	}
	return cmd
}

func seqSet(s string) imap.SeqSet {
	var set imap.SeqSet
	for _, r := range strings.Split(s, ",") {
		var a, b uint32
		if n, _ := fmt.Sscanf(r, "%d:%d", &a, &b); n == 2 {
			set.AddRange(a, b)
		} else if strings.HasSuffix(r, ":*") {
			fmt.Sscanf(r, "%d", &a)
			set.AddRange(a, 0)
		} else if r == "*" {
			set.AddNum(0)
		} else {
			fmt.Sscanf(r, "%d", &a)
			set.AddNum(a)
		}
	}
	return set
}

func uidSet(s string) imap.UIDSet {
	var set imap.UIDSet
	for _, r := range seqSet(s) {
		set = append(set, imap.UIDRange{Start: imap.UID(r.Start), Stop: imap.UID(r.Stop)})
	}
	return set
}

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

const prefetch = "MESSAGE-ID DATE X-MICROSOFT-ORIGINAL-MESSAGE-ID FROM CONTENT-TYPE SECURE-JOIN CHAT-VERSION CHAT-IS-POST-MESSAGE AUTOCRYPT-SETUP-MESSAGE"

type parseCase struct {
	name  string
	input string
	parse func(*Command) (any, error)
	want  any    // parsed value, when err is empty
	err   string // exact response for a BAD
}

func parseFetch(c *Command) (any, error)     { return c.Fetch() }
func parseStore(c *Command) (any, error)     { return c.Store() }
func parseSearch(c *Command) (any, error)    { return c.Search() }
func parseList(c *Command) (any, error)      { return c.List() }
func parseStatus(c *Command) (any, error)    { return c.Status() }
func parseSelect(c *Command) (any, error)    { return c.Select() }
func parseGetMeta(c *Command) (any, error)   { return c.GetMetadata() }
func parseSetMeta(c *Command) (any, error)   { return c.SetMetadata() }
func parseID(c *Command) (any, error)        { return c.ID() }
func parseAppend(c *Command) (any, error)    { return c.Append() }
func parseCopy(c *Command) (any, error)      { return c.Copy() }
func parseMailbox(c *Command) (any, error)   { return c.Mailbox() }
func parseAtoms(c *Command) (any, error)     { return c.Atoms() }
func parseNoArgs(c *Command) (any, error)    { return nil, c.NoArgs() }
func parseNumSetArg(c *Command) (any, error) { return c.NumSetArg() }
func parseLogin(c *Command) (any, error)     { u, p, err := c.Login(); return [2]string{u, p}, err }
func parseRename(c *Command) (any, error)    { f, t, err := c.Rename(); return [2]string{f, t}, err }
func parseAuthenticate(c *Command) (any, error) {
	m, ir, has, err := c.Authenticate()
	return fmt.Sprintf("%s %q %v", m, ir, has), err
}

func body(spec imap.PartSpecifier, part []int, peek bool) *imap.FetchItemBodySection {
	return &imap.FetchItemBodySection{Specifier: spec, Part: part, Peek: peek}
}

func TestParse(t *testing.T) {
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: strings.Fields(prefetch), Peek: true}
	whole := &imap.FetchItemBodySection{Peek: true}
	mime := body(imap.PartSpecifierMIME, []int{1, 2}, false)
	partial := &imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 0, Size: 100}}
	bin := &imap.FetchItemBinarySection{Part: []int{1, 2}}
	binSize := &imap.FetchItemBinarySectionSize{Part: []int{1}}
	rfc822 := &imap.FetchItemBodySection{}
	notFields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Part: []int{2}, HeaderFieldsNot: []string{"x-a", "Weird Name"}}

	tests := []parseCase{
		// Delta Chat's prefetch and download (chatmail spec §2.2).
		{"deltachat prefetch", "p UID FETCH 10:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (" + prefetch + ")])\r\n", parseFetch,
			&FetchArgs{Set: uidSet("10:*"), Options: imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{hdr}},
				Sections: []FetchSection{{Name: "BODY[HEADER.FIELDS (" + prefetch + ")]", Body: hdr}}}, ""},
		{"deltachat download", "d UID FETCH 5,7 (FLAGS BODY.PEEK[])\r\n", parseFetch,
			&FetchArgs{Set: uidSet("5,7"), Options: imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{whole}},
				Sections: []FetchSection{{Name: "BODY[]", Body: whole}}}, ""},
		{"fetch sections", "f fetch 1 (body[1.2.mime] BODY[]<0.100> BINARY[1.2] BINARY.SIZE[1] MODSEQ RFC822 BODY[2.HEADER.FIELDS.NOT (x-a \"Weird Name\")])\r\n", parseFetch,
			&FetchArgs{Set: seqSet("1"), Options: imap.FetchOptions{ModSeq: true,
				BodySection:       []*imap.FetchItemBodySection{mime, partial, rfc822, notFields},
				BinarySection:     []*imap.FetchItemBinarySection{bin},
				BinarySectionSize: []*imap.FetchItemBinarySectionSize{binSize}},
				Sections: []FetchSection{{Name: "BODY[1.2.MIME]", Body: mime}, {Name: "BODY[]", Body: partial},
					{Name: "BINARY[1.2]", Binary: bin}, {Name: "BINARY.SIZE[1]", BinarySize: binSize},
					{Name: "RFC822", Body: rfc822}, {Name: `BODY[2.HEADER.FIELDS.NOT (x-a "Weird Name")]`, Body: notFields}}}, ""},
		{"fetch macro", "f FETCH 1:3 FULL\r\n", parseFetch,
			&FetchArgs{Set: seqSet("1:3"), Options: imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{}}}, ""},
		{"fetch bodystructure", "f FETCH * (BODYSTRUCTURE ENVELOPE INTERNALDATE)\r\n", parseFetch,
			&FetchArgs{Set: seqSet("*"), Options: imap.FetchOptions{Envelope: true, InternalDate: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}}, ""},
		{"fetch changedsince vanished", "q UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", parseFetch,
			&FetchArgs{Set: uidSet("1:*"), Options: imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: 12345}, HasChangedSince: true, Vanished: true}, ""},
		{"fetch searchres", "f FETCH $ FLAGS\r\n", parseFetch,
			&FetchArgs{Set: imap.SearchRes(), Options: imap.FetchOptions{Flags: true}}, ""},
		{"vanished needs uid", "q FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n", parseFetch, nil, "q BAD VANISHED needs UID FETCH and CHANGEDSINCE"},
		{"fetch zero", "f FETCH 0 FLAGS\r\n", parseFetch, nil, "f BAD syntax error: expected sequence set at position 9"},
		{"fetch unknown item", "f FETCH 1 (FLAGS BOGUS)\r\n", parseFetch, nil, "f BAD syntax error: expected fetch attribute at position 18"},
		{"fetch bad section", "f FETCH 1 BODY[HEADERS]\r\n", parseFetch, nil, "f BAD syntax error: expected section at position 16"},
		{"fetch unclosed", "f FETCH 1 (FLAGS\r\n", parseFetch, nil, "f BAD syntax error: expected SP or ) at end of command"},
		{"fetch partial zero size", "f FETCH 1 BODY[]<0.0>\r\n", parseFetch, nil, "f BAD syntax error: zero not allowed at position 20"},

		{"store add seen", "o UID STORE 7 +FLAGS (\\Seen)\r\n", parseStore,
			&StoreArgs{Set: uidSet("7"), Flags: imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}}, ""},
		{"store unchangedsince silent bare flags", "s STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS.SILENT \\DELETED $Chat\r\n", parseStore,
			&StoreArgs{Set: seqSet("1:3"), Flags: imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagDeleted, "$Chat"}}, HasUnchangedSince: true}, ""},
		{"store replace empty", "s STORE 2 FLAGS ()\r\n", parseStore,
			&StoreArgs{Set: seqSet("2"), Flags: imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{}}}, ""},
		{"store bad item", "s STORE 2 LABELS (x)\r\n", parseStore, nil, "s BAD syntax error: unknown STORE item LABELS"},

		{"search nested", `s UID SEARCH RETURN (MIN COUNT) CHARSET utf-8 OR (FROM "a b" SINCE 1-Feb-1994) NOT (SEEN 2:*) UID $ MODSEQ "/flags/\\draft" all 620162338` + "\r\n", parseSearch,
			&SearchArgs{Return: imap.SearchOptions{ReturnMin: true, ReturnCount: true}, ESearch: true, Charset: "UTF-8",
				Criteria: imap.SearchCriteria{
					Or: [][2]imap.SearchCriteria{{
						{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "a b"}}, Since: date("1994-02-01")},
						{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen}, SeqNum: []imap.SeqSet{seqSet("2:*")}}}},
					}},
					UID:    []imap.UIDSet{imap.SearchRes()},
					ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 620162338, MetadataName: `/flags/\draft`, MetadataType: imap.SearchCriteriaMetadataAll},
				}}, ""},
		{"search plain", "s SEARCH UNSEEN LARGER 100 ON 2-Mar-2024 HEADER Chat-Version 1.0 (KEYWORD $Chat)\r\n", parseSearch,
			&SearchArgs{Criteria: imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}, Flag: []imap.Flag{"$Chat"}, Larger: 100,
				Since: date("2024-03-02"), Before: date("2024-03-03"),
				Header: []imap.SearchCriteriaHeaderField{{Key: "Chat-Version", Value: "1.0"}}}}, ""},
		{"search return empty means all", "s SEARCH RETURN () ALL\r\n", parseSearch,
			&SearchArgs{ESearch: true, Return: imap.SearchOptions{ReturnAll: true}}, ""},
		{"search unknown key", "s SEARCH FOO\r\n", parseSearch, nil, "s BAD unknown search key FOO"},
		{"search too deep", "s SEARCH " + strings.Repeat("NOT ", 9) + "SEEN\r\n", parseSearch, nil, "s BAD search keys too deeply nested (limit 8)"},
		{"search bad date", "s SEARCH SINCE 31-Foo-2020\r\n", parseSearch, nil, "s BAD syntax error: expected date at position 16"},

		{"list", `l LIST "" "*"` + "\r\n", parseList, &ListArgs{Patterns: []string{"*"}}, ""},
		{"list extended", `l LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" Chats/%) RETURN (CHILDREN STATUS (MESSAGES SIZE))` + "\r\n", parseList,
			&ListArgs{Patterns: []string{"INBOX", "Chats/%"}, Extended: true, Options: imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true,
				ReturnChildren: true, ReturnStatus: &imap.StatusOptions{NumMessages: true, Size: true}}}, ""},
		{"list mutf7", "l LIST \"\" &ZeVnLIqe-/*\r\n", parseList, &ListArgs{Patterns: []string{"日本語/*"}}, ""},
		{"list bad option", `l LIST (FOO) "" *` + "\r\n", parseList, nil, "l BAD unknown LIST selection option FOO"},

		{"status", "s STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT)\r\n", parseStatus,
			&StatusArgs{Mailbox: "INBOX", Items: imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true, HighestModSeq: true, AppendLimit: true}}, ""},
		{"status unknown", "s STATUS INBOX (BOGUS)\r\n", parseStatus, nil, "s BAD unknown STATUS item BOGUS"},

		{"select", `s SELECT "INBOX"` + "\r\n", parseSelect, &SelectArgs{Mailbox: "INBOX"}, ""},
		{"examine inbox case", "s EXAMINE inbox (CONDSTORE)\r\n", parseSelect, &SelectArgs{Mailbox: "INBOX", CondStore: true}, ""},
		{"select qresync", "s SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3 5,7)))\r\n", parseSelect,
			&SelectArgs{Mailbox: "INBOX", QResync: &QResyncArgs{UIDValidity: 67890007, ModSeq: 20050715194045000, KnownUIDs: uidSet("41,43:211,214:541"),
				SeqMatch: &SeqMatch{SeqNums: seqSet("1,3"), UIDs: uidSet("5,7")}}}, ""},
		{"select qresync short", "s SELECT INBOX (QRESYNC (1 2))\r\n", parseSelect,
			&SelectArgs{Mailbox: "INBOX", QResync: &QResyncArgs{UIDValidity: 1, ModSeq: 2}}, ""},
		{"select qresync missing modseq", "s SELECT INBOX (QRESYNC (1))\r\n", parseSelect, nil, "s BAD syntax error: QRESYNC needs UIDVALIDITY and MODSEQ"},

		// Chatmail scenario 16: bare LF and a space before ")".
		{"setmetadata devicetoken", "a01 SETMETADATA INBOX (/private/devicetoken \"1111\" )\n", parseSetMeta,
			&SetMetadataArgs{Mailbox: "INBOX", Entries: []MetadataEntry{{Name: "/private/devicetoken", Value: []byte("1111")}}}, ""},
		{"setmetadata literal+ and nil", "u SETMETADATA \"\" (/private/a {5+}\r\nhello /private/b NIL /private/c \"\")\r\n", parseSetMeta,
			&SetMetadataArgs{Entries: []MetadataEntry{{Name: "/private/a", Value: []byte("hello")}, {Name: "/private/b", Nil: true}, {Name: "/private/c", Value: []byte{}}}}, ""},
		{"setmetadata empty", `u SETMETADATA "" ()` + "\r\n", parseSetMeta, nil, "u BAD syntax error: no entries"},
		{"getmetadata deltachat", `g GETMETADATA "" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay)` + "\r\n", parseGetMeta,
			&GetMetadataArgs{Entries: []string{"/shared/comment", "/shared/admin", "/shared/vendor/deltachat/irohrelay"}, MaxSize: -1}, ""},
		{"getmetadata options", `b GETMETADATA (MAXSIZE 1024 DEPTH infinity) "" /private/vendor/vendor.dovecot/coi/config` + "\r\n", parseGetMeta,
			&GetMetadataArgs{Entries: []string{"/private/vendor/vendor.dovecot/coi/config"}, MaxSize: 1024, Depth: DepthInfinity}, ""},
		{"getmetadata depth 1", "a02 GETMETADATA (DEPTH 1) INBOX /private/devicetoken\n", parseGetMeta,
			&GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/private/devicetoken"}, MaxSize: -1, Depth: DepthOne}, ""},
		{"getmetadata options after mailbox", "g GETMETADATA INBOX (DEPTH 1) (/private/devicetoken)\r\n", parseGetMeta,
			&GetMetadataArgs{Mailbox: "INBOX", Entries: []string{"/private/devicetoken"}, MaxSize: -1, Depth: DepthOne}, ""},
		{"getmetadata bad depth", `b GETMETADATA (DEPTH 2) "" /x` + "\r\n", parseGetMeta, nil, "b BAD syntax error: DEPTH must be 0, 1 or infinity"},

		{"id", `i ID ("name" "Delta Chat" "Version" NIL)` + "\r\n", parseID, map[string]string{"name": "Delta Chat"}, ""},
		{"id nil", "i ID NIL\r\n", parseID, map[string]string{}, ""},
		{"id odd", `i ID ("name")` + "\r\n", parseID, nil, "i BAD syntax error: ID key without value"},

		{"append", "a APPEND Sent (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n", parseAppend,
			&AppendArgs{Mailbox: "Sent", Flags: []imap.Flag{imap.FlagSeen}, Date: time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600)), Message: []byte("hello")}, ""},
		{"append binary", "a APPEND INBOX ~{3+}\r\na\x00b\r\n", parseAppend,
			&AppendArgs{Mailbox: "INBOX", Message: []byte("a\x00b"), Binary: true}, ""},
		{"append utf8", "a APPEND INBOX UTF8 (~{13+}\r\nSubject: \xc3\xa4\r\n)\r\n", parseAppend,
			&AppendArgs{Mailbox: "INBOX", Message: []byte("Subject: \xc3\xa4\r\n"), Binary: true, UTF8: true}, ""},
		{"append utf8 unclosed", "a APPEND INBOX UTF8 ({2+}\r\nab\r\n", parseAppend, nil, "a BAD syntax error: expected \")\" at end of command"},
		{"append needs literal", `a APPEND INBOX "text"` + "\r\n", parseAppend, nil, "a BAD syntax error: expected date-time at position 16"},

		{"uid move", "m UID MOVE 1:3 \"Chats\"\r\n", parseCopy, &CopyArgs{Set: uidSet("1:3"), Mailbox: "Chats"}, ""},
		{"create mutf7", "c CREATE \"&ZeVnLIqe-\"\r\n", parseMailbox, "日本語", ""},
		{"create mutf7 amp", "c CREATE A&-B\r\n", parseMailbox, "A&B", ""},
		{"create bad mutf7", "c CREATE &Jjo\r\n", parseMailbox, nil, "c BAD invalid mailbox name at position 10: unterminated &-sequence"},
		{"rename", "r RENAME COI/Chats Archive/Chats\r\n", parseRename, [2]string{"COI/Chats", "Archive/Chats"}, ""},
		{"login literal", "l LOGIN {4+}\r\nuser \"p\\\"w\\\\\"\r\n", parseLogin, [2]string{"user", `p"w\`}, ""},
		{"login bad escape", `l LOGIN u "a\b"` + "\r\n", parseLogin, nil, "l BAD syntax error: bad escape in quoted string at position 13"},
		{"login nul", "l LOGIN u \"a\x00\"\r\n", parseLogin, nil, "l BAD syntax error: NUL in quoted string"},
		{"authenticate ir", "a AUTHENTICATE plain AHUAcA==\r\n", parseAuthenticate, `PLAIN "AHUAcA==" true`, ""},
		{"authenticate", "a AUTHENTICATE PLAIN\r\n", parseAuthenticate, `PLAIN "" false`, ""},
		{"compress", "z COMPRESS deflate\r\n", parseAtoms, []string{"DEFLATE"}, ""},
		{"enable", "e ENABLE CONDSTORE QRESYNC\r\n", parseAtoms, []string{"CONDSTORE", "QRESYNC"}, ""},
		{"noop trailing space", "n NOOP \r\n", parseNoArgs, nil, ""},
		{"noop junk", "n NOOP x\r\n", parseNoArgs, nil, `n BAD syntax error: unexpected "x" at position 8`},
		{"uid expunge", "x UID EXPUNGE 3:5\r\n", parseNumSetArg, uidSet("3:5"), ""},
		{"literal mid-line", "x CREATE {3}abc\r\n", parseMailbox, nil, "x BAD syntax error: literal marker must end the line"},
		{"binary literal as string", "x CREATE ~{3}\r\nabc\r\n", parseMailbox, nil, "x BAD syntax error: binary literal not allowed here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(command(t, tt.input, false))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				if _, ok := AsError(err); !ok {
					t.Fatalf("err is %T, want *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) && !(tt.want == nil && reflect.ValueOf(got).IsZero()) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
}

// dump renders nested pointers, which %+v prints as addresses.
func dump(v any) string {
	var b strings.Builder
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				b.WriteString("nil")
				return
			}
			b.WriteString("&")
			walk(v.Elem())
		case reflect.Struct:
			if t, ok := v.Interface().(time.Time); ok {
				b.WriteString(t.String())
				return
			}
			b.WriteString(v.Type().Name() + "{")
			for i := 0; i < v.NumField(); i++ {
				if v.Field(i).IsZero() {
					continue
				}
				b.WriteString(v.Type().Field(i).Name + ":")
				walk(v.Field(i))
				b.WriteString(" ")
			}
			b.WriteString("}")
		case reflect.Slice, reflect.Array:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				fmt.Fprintf(&b, "%q", v.Bytes())
				return
			}
			b.WriteString("[")
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
				b.WriteString(" ")
			}
			b.WriteString("]")
		default:
			fmt.Fprintf(&b, "%v", v)
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func TestParseUTF8Mailbox(t *testing.T) {
	// In UTF-8 mode "&" is an ordinary character.
	got, err := command(t, "c CREATE \"Ä&B\"\r\n", true).Mailbox()
	if err != nil || got != "Ä&B" {
		t.Errorf("Mailbox() = %q, %v", got, err)
	}
}
