package wire

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func u32(n uint32) *uint32 { return &n }
func i64(n int64) *int64   { return &n }

func TestWriter(t *testing.T) {
	date := time.Date(2026, 9, 1, 8, 5, 3, 0, time.FixedZone("", 2*3600))
	env := &imap.Envelope{
		Date:      date,
		Subject:   "Grüße",
		From:      []imap.Address{{Name: "Alice \"A\"", Mailbox: "alice", Host: "example.org"}},
		To:        []imap.Address{{Mailbox: "team"}, {Mailbox: "bob", Host: "example.net"}, {}},
		InReplyTo: []string{"a@x", "b@y"},
		MessageID: "id@example.org",
	}
	bs := &imap.BodyStructureMultiPart{
		Subtype: "mixed",
		Children: []imap.BodyStructure{
			&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "utf-8"}, Encoding: "quoted-printable", Size: 12,
				Text: &imap.BodyStructureText{NumLines: 2}, Extended: &imap.BodyStructureSinglePartExt{}},
			&imap.BodyStructureSinglePart{Type: "application", Subtype: "pgp-encrypted", Encoding: "7bit", Size: 10,
				Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "attachment", Params: map[string]string{"filename": "a.asc"}}, Language: []string{"en", "de"}}},
		},
		Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b1"}},
	}
	tests := []struct {
		name  string
		utf8  bool
		write func(w *Writer)
		want  string
	}{
		{"tagged ok with code", false, func(w *Writer) { w.OK("a", CodeCapability("IMAP4rev1", "IDLE", "METADATA"), "Logged in") },
			"a OK [CAPABILITY IMAP4rev1 IDLE METADATA] Logged in\r\n"},
		{"untagged uidvalidity", false, func(w *Writer) { w.OK("*", CodeUIDValidity(3857529045), "UIDs valid") },
			"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"},
		{"appenduid", false, func(w *Writer) { w.OK("A003", CodeAppendUID(38505, 3955), "APPEND completed") },
			"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n"},
		{"copyuid", false, func(w *Writer) { w.OK("A004", CodeCopyUID(38505, uidSet("304,319:320"), uidSet("3956:3958")), "Done") },
			"A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"},
		{"codes", false, func(w *Writer) {
			w.NO("a", CodeTooBig, "too big")
			w.NO("b", CodeOverQuota, "quota")
			w.NO("c", CodeMetadataMaxSize(4096), "value too long")
			w.OK("d", CodeModified(seqSet("7,9")), "Conditional STORE failed")
			w.OK("*", CodeHighestModSeq(715194045007), "Highest")
			w.NO("e", CodeTryCreate, "no such mailbox")
			w.OK("*", CodeClosed, "Previous mailbox closed")
			w.OK("*", CodePermanentFlags([]imap.Flag{imap.FlagSeen, imap.FlagWildcard}), "Limited")
			w.BAD("f", "", "")
		}, "a NO [TOOBIG] too big\r\nb NO [OVERQUOTA] quota\r\nc NO [METADATA MAXSIZE 4096] value too long\r\n" +
			"d OK [MODIFIED 7,9] Conditional STORE failed\r\n* OK [HIGHESTMODSEQ 715194045007] Highest\r\ne NO [TRYCREATE] no such mailbox\r\n" +
			"* OK [CLOSED] Previous mailbox closed\r\n* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\nf BAD done\r\n"},
		{"text with newline", false, func(w *Writer) { w.NO("a", "", "bad\r\nthing") }, "a NO bad  thing\r\n"},
		{"error fatal", false, func(w *Writer) { w.WriteError(&Error{Tag: "a", Status: BAD, Text: "literal too large", Fatal: true}) },
			"* BYE literal too large\r\n"},
		{"error toobig", false, func(w *Writer) {
			w.WriteError(&Error{Tag: "a", Status: NO, Code: CodeTooBig, Text: "message too large"})
		},
			"a NO [TOOBIG] message too large\r\n"},
		{"continue", false, func(w *Writer) { w.Continue("Ready for literal data") }, "+ Ready for literal data\r\n"},
		{"untagged counts", false, func(w *Writer) {
			w.Exists(23)
			w.Recent(0)
			w.Expunge(3)
			w.FlagsResponse([]imap.Flag{imap.FlagSeen, "$Chat"})
		},
			"* 23 EXISTS\r\n* 0 RECENT\r\n* 3 EXPUNGE\r\n* FLAGS (\\Seen $Chat)\r\n"},
		{"capability enabled", false, func(w *Writer) { w.Capability("IMAP4rev1", "LITERAL+"); w.Enabled("CONDSTORE") },
			"* CAPABILITY IMAP4rev1 LITERAL+\r\n* ENABLED CONDSTORE\r\n"},
		{"vanished", false, func(w *Writer) { w.Vanished(uidSet("41,43:116"), true); w.Vanished(uidSet("405"), false) },
			"* VANISHED (EARLIER) 41,43:116\r\n* VANISHED 405\r\n"},
		{"search", false, func(w *Writer) { w.Search([]uint32{2, 84, 882}, 917162500); w.Search(nil, 5) },
			"* SEARCH 2 84 882 (MODSEQ 917162500)\r\n* SEARCH\r\n"},
		{"esearch", false, func(w *Writer) {
			w.ESearch("A285", true, imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true},
				&imap.SearchData{Min: 7, Max: 3800, Count: 15, All: uidSet("7,3800")})
			w.ESearch("A286", false, imap.SearchOptions{ReturnMin: true, ReturnCount: true}, &imap.SearchData{})
		}, "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800 ALL 7,3800 COUNT 15\r\n* ESEARCH (TAG \"A286\") COUNT 0\r\n"},
		{"list rev1", false, func(w *Writer) {
			w.List("LIST", &imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}, Delim: '/', Mailbox: "INBOX"})
			w.List("LIST", &imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasChildren, imap.MailboxAttrSent}, Delim: '/', Mailbox: "日本語"})
			w.List("LIST", &imap.ListData{Delim: '/', Mailbox: "Foo", ChildInfo: &imap.ListDataChildInfo{Subscribed: true}})
			w.List("LIST", &imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Mailbox: "", Status: nil})
		}, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\HasChildren \\Sent) \"/\" &ZeVnLIqe-\r\n" +
			"* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n* LIST (\\Noselect) NIL \"\"\r\n"},
		{"list utf8 with status", true, func(w *Writer) {
			w.List("LIST", &imap.ListData{Delim: '/', Mailbox: "Grüße Box", OldName: "Alt",
				Status: &imap.StatusData{Mailbox: "Grüße Box", NumMessages: u32(3), UIDNext: 4}})
		}, "* LIST () \"/\" \"Grüße Box\" (\"OLDNAME\" (Alt))\r\n* STATUS \"Grüße Box\" (MESSAGES 3 UIDNEXT 4)\r\n"},
		{"status all items", false, func(w *Writer) {
			w.Status(&imap.StatusData{Mailbox: "INBOX", NumMessages: u32(0), UIDNext: 1, UIDValidity: 9, NumUnseen: u32(0), NumDeleted: u32(1),
				Size: i64(2048), AppendLimit: u32(31457280), HighestModSeq: 77})
		}, "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 9 UNSEEN 0 DELETED 1 SIZE 2048 APPENDLIMIT 31457280 HIGHESTMODSEQ 77)\r\n"},
		// COI spec §9: values as synchronizing literals.
		{"metadata", false, func(w *Writer) {
			w.Metadata("", []MetadataEntry{{Name: "/private/vendor/vendor.dovecot/coi/config/mailbox-root", Value: []byte("COI")}})
			w.Metadata("", []MetadataEntry{{Name: "/private/vendor/vendor.dovecot/coi/config/enabled", Nil: true}, {Name: "/shared/admin", Value: []byte("mailto:a@b")}})
			w.Metadata("INBOX", []MetadataEntry{{Name: "/private/devicetoken", Value: []byte("1111 2222")}})
		}, "* METADATA \"\" (/private/vendor/vendor.dovecot/coi/config/mailbox-root {3}\r\nCOI)\r\n" +
			"* METADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled NIL /shared/admin {10}\r\nmailto:a@b)\r\n" +
			"* METADATA INBOX (/private/devicetoken {9}\r\n1111 2222)\r\n"},
		{"quota", false, func(w *Writer) {
			w.QuotaRoot("INBOX", "")
			w.Quota("", []QuotaResource{{Name: imap.QuotaResourceStorage, Usage: 10, Limit: 512000}, {Name: imap.QuotaResourceMessage, Usage: 2, Limit: 1000}})
		}, "* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" (STORAGE 10 512000 MESSAGE 2 1000)\r\n"},
		{"id", false, func(w *Writer) { w.ID(map[string]string{"name": "coibox", "version": "0.1"}); w.ID(nil) },
			"* ID (\"name\" \"coibox\" \"version\" \"0.1\")\r\n* ID NIL\r\n"},
		{"strings", false, func(w *Writer) {
			for _, s := range []string{"atom", "", "NIL", "two words", `q"b\`, "a\r\nb", "ü"} {
				w.AString(s)
				w.SP()
			}
		}, "atom \"\" \"NIL\" \"two words\" \"q\\\"b\\\\\" {4}\r\na\r\nb {2}\r\nü "},
		{"strings utf8", true, func(w *Writer) { w.AString("ü"); w.SP(); w.Mailbox("inbox"); w.SP(); w.Mailbox("A&B") }, "\"ü\" INBOX A&B"},
		{"mailbox mutf7", false, func(w *Writer) { w.Mailbox("A&B"); w.SP(); w.Mailbox("") }, "A&-B \"\""},
		{"fetch flags uid", false, func(w *Writer) {
			w.FetchStart(12)
			w.FetchUID(4827313)
			w.FetchFlags([]imap.Flag{imap.FlagSeen, "$Chat"})
			w.FetchModSeq(12121231000)
			w.FetchEnd()
			w.FetchStart(13)
			w.FetchFlags(nil)
			w.FetchEnd()
		}, "* 12 FETCH (UID 4827313 FLAGS (\\Seen $Chat) MODSEQ (12121231000))\r\n* 13 FETCH (FLAGS ())\r\n"},
		{"fetch deltachat prefetch", false, func(w *Writer) {
			w.FetchStart(1)
			w.FetchUID(7)
			w.FetchRFC822Size(4242)
			w.FetchSection("BODY[HEADER.FIELDS (MESSAGE-ID DATE)]", nil, []byte("Message-ID: <x@y>\r\n\r\n"))
			w.FetchEnd()
		}, "* 1 FETCH (UID 7 RFC822.SIZE 4242 BODY[HEADER.FIELDS (MESSAGE-ID DATE)] {21}\r\nMessage-ID: <x@y>\r\n\r\n)\r\n"},
		{"fetch partial binary", false, func(w *Writer) {
			w.FetchStart(2)
			w.FetchSection("BODY[]", &imap.SectionPartial{Offset: 100, Size: 5}, []byte("hello"))
			w.FetchBinary("BINARY[1.2]", nil, []byte("a\x00b"))
			w.FetchBinary("BINARY[1]", nil, []byte("plain"))
			w.FetchBinarySize("BINARY.SIZE[1]", 5)
			w.FetchSection("BODY[3]", nil, nil)
			w.FetchEnd()
		}, "* 2 FETCH (BODY[]<100> {5}\r\nhello BINARY[1.2] ~{3}\r\na\x00b BINARY[1] {5}\r\nplain BINARY.SIZE[1] 5 BODY[3] NIL)\r\n"},
		{"fetch internaldate", false, func(w *Writer) {
			w.FetchStart(3)
			w.FetchInternalDate(time.Date(2026, 9, 1, 8, 5, 3, 0, time.FixedZone("", -(7*3600+30*60))))
			w.FetchEnd()
		}, "* 3 FETCH (INTERNALDATE \" 1-Sep-2026 08:05:03 -0730\")\r\n"},
		{"fetch raw item", false, func(w *Writer) {
			w.FetchStart(5)
			w.FetchRaw("ENVELOPE ", []byte("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"))
			w.FetchUID(9)
			w.FetchEnd()
		}, "* 5 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) UID 9)\r\n"},
		{"fetch envelope rev1", false, func(w *Writer) { w.FetchStart(4); w.FetchEnvelope(env); w.FetchEnd() },
			"* 4 FETCH (ENVELOPE (\"Tue, 01 Sep 2026 08:05:03 +0200\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" " +
				"((\"Alice \\\"A\\\"\" NIL \"alice\" \"example.org\")) NIL NIL " +
				"((NIL NIL \"team\" NIL)(NIL NIL \"bob\" \"example.net\")(NIL NIL NIL NIL)) NIL NIL \"<a@x> <b@y>\" \"<id@example.org>\"))\r\n"},
		{"fetch envelope utf8 empty", true, func(w *Writer) {
			w.FetchStart(5)
			w.FetchEnvelope(&imap.Envelope{Subject: "Grüße"})
			w.FetchEnd()
		}, "* 5 FETCH (ENVELOPE (NIL \"Grüße\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"},
		{"fetch bodystructure", false, func(w *Writer) {
			w.FetchStart(6)
			w.FetchBodyStructure(bs, true)
			w.FetchBodyStructure(bs, false)
			w.FetchEnd()
		},
			"* 6 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 12 2 NIL NIL NIL NIL)" +
				"(\"application\" \"pgp-encrypted\" NIL NIL NIL \"7bit\" 10 NIL (\"attachment\" (\"filename\" \"a.asc\")) (\"en\" \"de\") NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL) " +
				"BODY ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 12 2)(\"application\" \"pgp-encrypted\" NIL NIL NIL \"7bit\" 10) \"mixed\"))\r\n"},
		{"fetch message/rfc822", false, func(w *Writer) {
			w.FetchStart(7)
			w.FetchBodyStructure(&imap.BodyStructureSinglePart{Type: "message", Subtype: "rfc822", Size: 30,
				MessageRFC822: &imap.BodyStructureMessageRFC822{Envelope: &imap.Envelope{Subject: "in"},
					BodyStructure: &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Size: 3}, NumLines: 4}}, false)
			w.FetchEnd()
		}, "* 7 FETCH (BODY (\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 30 (NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7BIT\" 3 0) 4))\r\n"},
		// "Content-Type: 0;*=utf-8''0" (found by FuzzSummarize): no subtype, a
		// parameter without a name. Sent as text/plain with the nameless one left
		// out, which imapclient reads.
		{"fetch invalid content type", false, func(w *Writer) {
			w.FetchStart(8)
			w.FetchBodyStructure(&imap.BodyStructureSinglePart{Type: "0", Params: map[string]string{"": "0"}}, false)
			w.FetchBodyStructure(&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"": "0", "charset": "x"}}, false)
			w.FetchEnd()
		}, "* 8 FETCH (BODY (\"text\" \"plain\" NIL NIL NIL \"7BIT\" 0 0) BODY (\"text\" \"plain\" (\"charset\" \"x\") NIL NIL \"7BIT\" 0 0))\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.UTF8 = tt.utf8
			tt.write(w)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("wrote\n%s\nwant\n%s", strings.ReplaceAll(got, "\r\n", "⏎\n"), strings.ReplaceAll(tt.want, "\r\n", "⏎\n"))
			}
		})
	}
}
