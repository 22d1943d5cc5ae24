package wire

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

var parsers = []func(*Command) (any, error){
	parseFetch, parseStore, parseSearch, parseList, parseStatus, parseSelect, parseGetMeta, parseSetMeta,
	parseID, parseAppend, parseCopy, parseMailbox, parseAtoms, parseNoArgs, parseNumSetArg, parseLogin,
	parseRename, parseAuthenticate,
}

// FuzzParseCommand feeds arbitrary bytes through the reader and every
// argument parser: nothing may panic, every command read must end, and
// failures must be *Error or I/O errors.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"a01 SETMETADATA INBOX (/private/devicetoken \"1111\" )\n",
		"p UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (" + prefetch + ")])\r\n",
		"f fetch 1 (body[1.2.mime] BODY[]<0.100> BINARY[1.2] BINARY.SIZE[1] MODSEQ) (CHANGEDSINCE 5 VANISHED)\r\n",
		"s UID SEARCH RETURN (MIN) CHARSET UTF-8 OR (FROM \"a b\" SINCE 1-Feb-1994) NOT (SEEN 2:*) UID $ MODSEQ \"/flags/\\\\draft\" all 6\r\n",
		"l LIST (SUBSCRIBED) \"\" (\"INBOX\" Chats/%) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n",
		"s SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1,3 5,7)))\r\n",
		"a APPEND Sent (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n",
		"u SETMETADATA \"\" (/private/a {5+}\r\nhello /private/b NIL)\r\n",
		"b GETMETADATA (MAXSIZE 1024 DEPTH infinity) \"\" (/a /b)\r\n",
		"s STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS.SILENT \\Deleted $Chat\r\n",
		"i ID (\"name\" \"Delta Chat\")\r\nc CREATE &ZeVnLIqe-\r\n",
		"a APPEND INBOX ~{3+}\r\na\x00b\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLine: 512, MaxLiteral: 256, MaxAppend: 512, MaxDepth: 8, MaxArgs: 64}
		for _, parse := range parsers {
			r := NewReader(bytes.NewReader(data), lim)
			r.UTF8 = len(data)%2 == 0
			for i := 0; i < 50; i++ {
				cmd, err := r.ReadCommand(context.Background())
				if err != nil {
					if e, ok := AsError(err); ok {
						checkError(t, e)
						if e.Fatal {
							break
						}
						continue
					}
					break // I/O error: the input is used up
				}
				if _, err := parse(cmd); err != nil {
					e, ok := AsError(err)
					if !ok {
						t.Fatalf("parse error %T %v is not *Error", err, err)
					}
					checkError(t, e)
				}
			}
		}
	})
}

func checkError(t *testing.T, e *Error) {
	t.Helper()
	if e.Text == "" || strings.ContainsAny(e.Text, "\r\n") || e.Tag == "" || strings.ContainsAny(e.Tag, " \r\n") {
		t.Fatalf("malformed error response %q", e.Error())
	}
}

func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "日本語/Grüße", "A&B", "&ZeVnLIqe-", "&-", "&Jjo-!", "&2D3cAA-", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := DecodeMUTF7(s); err == nil && !utf8.ValidString(d) {
			t.Fatalf("DecodeMUTF7(%q) = %q, not UTF-8", s, d)
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := EncodeMUTF7(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("EncodeMUTF7(%q) = %q, not printable ASCII", s, enc)
			}
		}
		dec, err := DecodeMUTF7(enc)
		if err != nil || dec != s {
			t.Fatalf("DecodeMUTF7(EncodeMUTF7(%q)) = %q, %v", s, dec, err)
		}
	})
}
