package imapd

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/coibox/coibox/store"
)

const greeting = "S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN] coibox IMAP ready"

const loginOK = "S: a1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC ESEARCH SEARCHRES SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS CHILDREN BINARY UTF8=ACCEPT APPENDLIMIT=31457280 STATUS=SIZE METADATA QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE COMPRESS=DEFLATE] Logged in"

func TestTranscriptLoginSelectFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "first"))
	e.deliver(e.acc, "INBOX", testMessage(2, "second"))
	e.transcript(t, greeting+`
		C: a1 LOGIN alice@example.org password123
		`+loginOK+`
		C: a2 SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: a2 OK [READ-WRITE] SELECT completed
		C: a3 FETCH 1:* (FLAGS UID)
		S: * 1 FETCH (UID 1 FLAGS ())
		S: * 2 FETCH (UID 2 FLAGS ())
		S: a3 OK FETCH completed
		C: a4 UID FETCH 2 (RFC822.SIZE ENVELOPE)
		S: * 2 FETCH (UID 2 RFC822.SIZE 198 ENVELOPE ("Tue, 01 Sep 2026 10:00:02 +0200" "second" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<m2@example.org>"))
		S: a4 OK UID FETCH completed
		C: a5 LOGOUT
		S: * BYE Logging out
		S: a5 OK LOGOUT completed
	`, nil)
}

const login = `
		C: a1 LOGIN alice@example.org password123
		S: a1 OK [CAPABILITY <*>] Logged in`

const selectInbox = `
		C: s1 SELECT INBOX
		S: * FLAGS (<*>)
		S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
		S: * <n> EXISTS
		S: * 0 RECENT
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT <n>] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: s1 OK [READ-WRITE] SELECT completed`

// selectUnseen is selectInbox for a mailbox whose first message is unseen.
var selectUnseen = strings.Replace(selectInbox, "S: * 0 RECENT", "S: * 0 RECENT\n\t\tS: * OK [UNSEEN 1] First unseen", 1)

func TestTranscriptErrors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.MaxLine = 200 })
	e.transcript(t, greeting+`
		C: x1 FROB
		S: x1 BAD Unknown command FROB
		C: x2 SELECT INBOX
		S: x2 BAD SELECT is not allowed before login
		C: x3 LOGIN alice@example.org wrong
		S: x3 NO [AUTHENTICATIONFAILED] Authentication failed.
		C: x4 LOGIN nobody@example.org wrong
		S: x4 NO [AUTHENTICATIONFAILED] Authentication failed.
		C: x5 LOGIN "unterminated
		S: x5 BAD syntax error: unterminated quoted string
		C: x6 NOOP `+strings.Repeat("x", 300)+`
		S: x6 BAD line too long (limit 200 bytes)
		C: x7 CAPABILITY extra
		S: x7 BAD syntax error: unexpected "extra" at position 15
		C: x8 UID NOOP
		S: x8 BAD NOOP has no UID form
		`+login+`
		C: a2 FETCH 1 FLAGS
		S: a2 BAD FETCH is not allowed without a selected mailbox
		C: a3 UID LIST "" *
		S: a3 BAD LIST has no UID form
		`+selectInbox+`
		C: a4 FETCH 1 FLAGS
		S: a4 BAD Invalid message sequence number 1 (the mailbox has 0 messages)
		C: a5 UID FETCH 1:* FLAGS
		S: a5 OK UID FETCH completed
		C: a6 SEARCH CHARSET KOI8-R TEXT x
		S: a6 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset KOI8-R
		C: a7 STORE 1 +FLAGS (\Bogus)
		S: a7 BAD Invalid message sequence number 1 (the mailbox has 0 messages)
		C: a8 SELECT nosuch
		S: * OK [CLOSED] Previous mailbox closed
		S: a8 NO [NONEXISTENT] No such mailbox
		C: a9 CHECK
		S: a9 BAD CHECK is not allowed without a selected mailbox
	`, nil)
}

func TestTranscriptAuthenticate(t *testing.T) {
	e := newEnv(t)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00password123"))
	e.transcript(t, greeting+`
		C: a1 AUTHENTICATE CRAM-MD5
		S: a1 NO [CANNOT] Unsupported authentication mechanism CRAM-MD5 (use PLAIN)
		C: a2 AUTHENTICATE PLAIN
		S: + 
		C: *
		S: a2 BAD Authentication cancelled
		C: a3 AUTHENTICATE PLAIN
		S: + 
		C: !!!
		S: a3 BAD Invalid base64 in authentication response
		C: a4 AUTHENTICATE PLAIN `+base64.StdEncoding.EncodeToString([]byte("bob\x00alice@example.org\x00password123"))+`
		S: a4 NO [AUTHORIZATIONFAILED] Cannot log in as another user
		C: a5 AUTHENTICATE PLAIN
		S: + 
		C: `+plain+`
		S: a5 OK [CAPABILITY <*>] Logged in
		C: a6 LOGIN alice@example.org password123
		S: a6 BAD LOGIN is not allowed without a selected mailbox
	`, nil)
	e.transcript(t, greeting+`
		C: b1 AUTHENTICATE PLAIN `+plain+`
		S: b1 OK [CAPABILITY <*>] Logged in
	`, nil)
}

func TestTranscriptMailboxes(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "one"))
	e.transcript(t, greeting+login+`
		C: a2 NAMESPACE
		S: * NAMESPACE (("" "/")) NIL NIL
		S: a2 OK NAMESPACE completed
		C: a3 LIST "" ""
		S: * LIST (\Noselect) "/" ""
		S: a3 OK LIST completed
		C: a4 CREATE Projects/2026/
		S: a4 OK CREATE completed
		C: a5 CREATE Projects
		S: a5 NO [ALREADYEXISTS] Mailbox already exists
		C: a6 CREATE inbox
		S: a6 NO [ALREADYEXISTS] INBOX always exists
		C: a7 CREATE Stuff (USE (\Flagged))
		S: a7 OK CREATE completed
		C: a8 CREATE Bad (USE (\Bogus))
		S: a8 NO [USEATTR] Unsupported special-use attribute \Bogus
		C: a9 LIST "" *
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * LIST (\HasChildren) "/" Projects
		S: * LIST (\HasNoChildren) "/" Projects/2026
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * LIST (\HasNoChildren \Flagged) "/" Stuff
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: a9 OK LIST completed
		C: b1 LIST "" %
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * LIST (\HasChildren) "/" Projects
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * LIST (\HasNoChildren \Flagged) "/" Stuff
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: b1 OK LIST completed
		C: b2 LIST "Projects/" %
		S: * LIST (\HasNoChildren) "/" Projects/2026
		S: b2 OK LIST completed
		C: b3 RENAME Projects Work
		S: b3 OK RENAME completed
		C: b4 UNSUBSCRIBE Work
		S: b4 OK UNSUBSCRIBE completed
		C: b5 LIST (SUBSCRIBED RECURSIVEMATCH) "" Work*
		S: * LIST (\HasChildren) "/" Work ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasNoChildren \Subscribed) "/" Work/2026
		S: b5 OK LIST completed
		C: b6 LSUB "" W*
		S: * LSUB () "/" Work/2026
		S: b6 OK LSUB completed
		C: b7 LIST (SPECIAL-USE) "" * RETURN (STATUS (MESSAGES))
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: * STATUS Archive (MESSAGES 0)
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * STATUS Drafts (MESSAGES 0)
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * STATUS Junk (MESSAGES 0)
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * STATUS Sent (MESSAGES 0)
		S: * LIST (\HasNoChildren \Flagged) "/" Stuff
		S: * STATUS Stuff (MESSAGES 0)
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: * STATUS Trash (MESSAGES 0)
		S: b7 OK LIST completed
		C: b8 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT)
		S: * STATUS INBOX (MESSAGES 1 RECENT 0 UIDNEXT 2 UIDVALIDITY <n> UNSEEN 1 DELETED 0 SIZE <n> APPENDLIMIT 31457280 HIGHESTMODSEQ <n>)
		S: b8 OK STATUS completed
		C: b9 STATUS nosuch (MESSAGES)
		S: b9 NO [NONEXISTENT] No such mailbox
		C: c1 DELETE Work
		S: c1 OK DELETE completed
		C: c2 DELETE INBOX
		S: c2 NO [CANNOT] INBOX cannot be deleted
		C: c3 DELETE Work
		S: c3 NO [NONEXISTENT] No such mailbox
		C: c4 SUBSCRIBE nosuch
		S: c4 NO [NONEXISTENT] No such mailbox
		C: c5 CREATE &ZeVnLIqe-
		S: c5 OK CREATE completed
		C: c6 LIST "" &ZeVnLIqe-
		S: * LIST (\HasNoChildren) "/" &ZeVnLIqe-
		S: c6 OK LIST completed
		C: c7 ENABLE IMAP4rev2
		S: * ENABLED IMAP4rev2
		S: c7 OK ENABLE completed
		C: c8 LIST "" 日本語
		S: * LIST (\HasNoChildren) "/" "日本語"
		S: c8 OK LIST completed
	`, nil)
}

const mimeMessage = `Message-ID: <mime@example.org>
Date: Wed, 02 Sep 2026 12:00:00 +0000
From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>
To: alice@example.org
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hall=C3=B6 Welt
--b1
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AQIAAwQ=
--b1--
`

func TestTranscriptFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", "Subject: hi\n\nabcdefghij\n")
	e.deliver(e.acc, "INBOX", mimeMessage)
	e.transcript(t, greeting+login+selectUnseen+`
		C: f1 FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT]<2.3> RFC822.SIZE)
		S: * 1 FETCH (RFC822.SIZE 27 BODY[HEADER] {15}
		S: Subject: hi
		S: 
		S:  BODY[TEXT]<2> {3}
		S: cde)
		S: f1 OK FETCH completed
		C: f2 FETCH 1 (BODY.PEEK[TEXT]<50.10> FLAGS)
		S: * 1 FETCH (FLAGS () BODY[TEXT]<50> {0}
		S: )
		S: f2 OK FETCH completed
		C: f3 FETCH 1 BODY[]
		S: * 1 FETCH (FLAGS (\Seen) BODY[] {27}
		S: Subject: hi
		S: 
		S: abcdefghij
		S: )
		S: f3 OK FETCH completed
		C: f4 FETCH 2 (BODYSTRUCTURE ENVELOPE)
		S: * 2 FETCH (ENVELOPE ("Wed, 02 Sep 2026 12:00:00 +0000" "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) (("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) (("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.org")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<mime@example.org>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 0 NIL NIL NIL NIL)("application" "octet-stream" NIL NIL NIL "base64" 8 NIL NIL NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL))
		S: f4 OK FETCH completed
		C: f5 FETCH 2 (BODY BINARY.PEEK[1] BINARY.SIZE[2] BODY.PEEK[1.MIME])
		S: * 2 FETCH (BODY (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 0)("application" "octet-stream" NIL NIL NIL "base64" 8) "mixed") BINARY[1] {11}
		S: Hallö Welt BINARY.SIZE[2] 5 BODY[1.MIME] {88}
		S: Content-Type: text/plain; charset=utf-8
		S: Content-Transfer-Encoding: quoted-printable
		S: 
		S: )
		S: f5 OK FETCH completed
		C: f6 UID FETCH 2 (RFC822.HEADER BODY.PEEK[HEADER.FIELDS (Subject Message-ID)])
		S: * 2 FETCH (UID 2 RFC822.HEADER {<n>}
		S: Message-ID: <mime@example.org>
		S: <*>
		S: <*>
		S: <*>
		S: <*>
		S: <*>
		S: <*>
		S: 
		S:  BODY[HEADER.FIELDS (Subject Message-ID)] {72}
		S: Message-ID: <mime@example.org>
		S: Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
		S: 
		S: )
		S: f6 OK UID FETCH completed
		C: f7 ENABLE UTF8=ACCEPT
		S: * ENABLED UTF8=ACCEPT
		S: f7 OK ENABLE completed
		C: f8 FETCH 2 ENVELOPE
		S: * 2 FETCH (ENVELOPE ("Wed, 02 Sep 2026 12:00:00 +0000" "Grüße" (("Jörg" NIL "joerg" "example.org")) (("Jörg" NIL "joerg" "example.org")) (("Jörg" NIL "joerg" "example.org")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<mime@example.org>"))
		S: f8 OK FETCH completed
		C: f9 FETCH 1:2 (FLAGS) (CHANGEDSINCE 1)
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: * 1 FETCH (FLAGS (\Seen) MODSEQ (<n>))
		S: * 2 FETCH (FLAGS () MODSEQ (<n>))
		S: f9 OK FETCH completed
		C: g1 FETCH 1 (BODY[]<0.7>)
		S: * 1 FETCH (FLAGS (\Seen) BODY[]<0> {7}
		S: Subject)
		S: g1 OK FETCH completed
		C: g2 FETCH 1 (RFC822.TEXT RFC822)
		S: * 1 FETCH (FLAGS (\Seen) RFC822.TEXT {12}
		S: abcdefghij
		S:  RFC822 {27}
		S: Subject: hi
		S: 
		S: abcdefghij
		S: )
		S: g2 OK FETCH completed
	`, nil)
}

func TestTranscriptStoreExpunge(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, "s"))
	}
	e.transcript(t, greeting+login+selectUnseen+`
		C: t1 STORE 1:2 +FLAGS (\Seen)
		S: * 1 FETCH (FLAGS (\Seen))
		S: * 2 FETCH (FLAGS (\Seen))
		S: t1 OK STORE completed
		C: t2 UID STORE 2 FLAGS.SILENT (\Deleted)
		S: t2 OK UID STORE completed
		C: t3 STORE 3 +FLAGS ($Chat)
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Chat)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Chat \*)] Flags permitted
		S: * 3 FETCH (FLAGS ($Chat))
		S: t3 OK STORE completed
		C: t4 STORE 1 -FLAGS \Seen
		S: * 1 FETCH (FLAGS ())
		S: t4 OK STORE completed
		C: t5 STORE 1:4 (UNCHANGEDSINCE 1) +FLAGS (\Flagged)
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: t5 OK [MODIFIED 1:4] Conditional STORE failed for some messages
		C: t6 FETCH 4 (MODSEQ)
		S: * 4 FETCH (MODSEQ (<n>))
		S: t6 OK FETCH completed
		C: t7 STORE 4 (UNCHANGEDSINCE 1000) +FLAGS.SILENT (\Flagged)
		S: * 4 FETCH (UID 4 MODSEQ (<n>))
		S: t7 OK STORE completed
		C: t8 EXPUNGE
		S: * 2 EXPUNGE
		S: t8 OK EXPUNGE completed
		C: t9 UID STORE 1,3 +FLAGS.SILENT (\Deleted)
		S: * 1 FETCH (UID 1 MODSEQ (<n>))
		S: * 2 FETCH (UID 3 MODSEQ (<n>))
		S: t9 OK UID STORE completed
		C: u1 UID EXPUNGE 3:10
		S: * 2 EXPUNGE
		S: u1 OK UID EXPUNGE completed
		C: u2 UID SEARCH ALL
		S: * SEARCH 1 4
		S: u2 OK UID SEARCH completed
		C: u3 COPY 1:2 Archive
		S: u3 OK [COPYUID <n> 1,4 1:2] COPY completed
		C: u4 UID MOVE 4 Trash
		S: * OK [COPYUID <n> 4 1] Moved
		S: * 2 EXPUNGE
		S: u4 OK UID MOVE completed
		C: u5 COPY 1 Nosuch
		S: u5 NO [TRYCREATE] No such mailbox
		C: u6 CLOSE
		S: u6 OK CLOSE completed
		C: u7 STATUS INBOX (MESSAGES)
		S: * STATUS INBOX (MESSAGES 0)
		S: u7 OK STATUS completed
		C: u8 EXAMINE Archive
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] No permanent flags permitted
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: u8 OK [READ-ONLY] EXAMINE completed
		C: u9 STORE 1 +FLAGS (\Seen)
		S: u9 NO [READ-ONLY] Mailbox is read-only
		C: v1 UNSELECT
		S: v1 OK UNSELECT completed
	`, nil)
}

func TestTranscriptIdle(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.KeepAlive = 1500 * time.Millisecond })
	e.deliver(e.acc, "INBOX", testMessage(1, "old"))
	other := func(cmds ...string) func() {
		return func() {
			c := e.dial(t, nil)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range cmds {
				switch cmd {
				case "flag":
					if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
						t.Fatal(err)
					}
				case "expunge":
					if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
						t.Fatal(err)
					}
					if err := c.Expunge().Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.Close()
		}
	}
	e.transcript(t, greeting+login+selectUnseen+`
		C: i1 IDLE
		S: + idling
		! deliver
		S: * 2 EXISTS
		! flag
		S: * 1 FETCH (UID 1 FLAGS (\Flagged))
		S: * OK Still here
		C: DONE
		S: i1 OK IDLE terminated
		! expunge
		C: i2 FETCH 1 (FLAGS)
		S: * 1 FETCH (FLAGS (\Flagged))
		S: i2 OK FETCH completed
		C: i3 NOOP
		S: * 1 EXPUNGE
		S: i3 OK NOOP completed
		C: i4 IDLE
		S: + idling
		C: NOTDONE
		S: i4 BAD Expected DONE to end IDLE
		C: i5 IDLE
		S: + idling
		! deliver
		S: * 2 EXISTS
		C: done
		S: i5 OK IDLE terminated
		C: i6 UID FETCH 1:* (UID)
		S: * 1 FETCH (UID 2)
		S: * 2 FETCH (UID 3)
		S: i6 OK UID FETCH completed
	`, map[string]func(){
		"deliver": func() { e.deliver(e.acc, "INBOX", testMessage(9, "new")) },
		"flag":    other("flag"),
		"expunge": other("expunge"),
	})
}

func TestTranscriptCondstoreQresync(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, "q"))
	}
	mb, err := e.st.Mailbox(context.Background(), e.acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	v := strconv.FormatUint(uint64(mb.UIDValidity), 10)
	e.transcript(t, greeting+login+`
		C: q1 ENABLE QRESYNC CONDSTORE
		S: * ENABLED QRESYNC
		S: q1 OK ENABLE completed
		`+selectUnseen+`
		C: q2 STORE 2 +FLAGS.SILENT (\Deleted)
		S: * 2 FETCH (UID 2 MODSEQ (7))
		S: q2 OK STORE completed
		C: q3 STORE 3 +FLAGS (\Seen)
		S: * 3 FETCH (UID 3 FLAGS (\Seen) MODSEQ (8))
		S: q3 OK STORE completed
		C: q4 EXPUNGE
		S: * VANISHED 2
		S: q4 OK EXPUNGE completed
		C: q5 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)
		S: * VANISHED (EARLIER) 2
		S: * 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (8))
		S: q5 OK UID FETCH completed
		C: q6 UID SEARCH MODSEQ 8
		S: * SEARCH 3 (MODSEQ 8)
		S: q6 OK UID SEARCH completed
		C: q7 SELECT INBOX (QRESYNC (`+v+` 6 1:10))
		S: * OK [CLOSED] Previous mailbox closed
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 4 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY `+v+`] UIDs valid
		S: * OK [UIDNEXT 6] Predicted next UID
		S: * OK [HIGHESTMODSEQ 9] Highest
		S: * VANISHED (EARLIER) 2
		S: * 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (8))
		S: q7 OK [READ-WRITE] SELECT completed
		C: q8 STATUS INBOX (HIGHESTMODSEQ)
		S: * STATUS INBOX (HIGHESTMODSEQ 9)
		S: q8 OK STATUS completed
	`, nil)
}

func TestTranscriptRev2Search(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 6; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, []string{"apple", "banana", "Apple pie", "cherry", "date", "APPLE"}[i-1]))
	}
	e.transcript(t, greeting+login+`
		C: r1 SELECT INBOX
		S: * FLAGS (<*>)
		S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
		S: * 6 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 7] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: r1 OK [READ-WRITE] SELECT completed
		C: r2 SEARCH SUBJECT apple
		S: * SEARCH 1 3 6
		S: r2 OK SEARCH completed
		C: r3 UID SEARCH RETURN (MIN MAX COUNT ALL) OR SUBJECT cherry SUBJECT date
		S: * ESEARCH (TAG "r3") UID MIN 4 MAX 5 ALL 4:5 COUNT 2
		S: r3 OK UID SEARCH completed
		C: r4 SEARCH RETURN (SAVE) SUBJECT apple
		S: r4 OK SEARCH completed
		C: r5 FETCH $ (UID)
		S: * 1 FETCH (UID 1)
		S: * 3 FETCH (UID 3)
		S: * 6 FETCH (UID 6)
		S: r5 OK FETCH completed
		C: r6 UID SEARCH $ NOT 1
		S: * SEARCH 3 6
		S: r6 OK UID SEARCH completed
		C: r7 SEARCH 2:4 NOT SUBJECT banana
		S: * SEARCH 3 4
		S: r7 OK SEARCH completed
		C: r8 SEARCH RETURN (COUNT) SUBJECT nothing
		S: * ESEARCH (TAG "r8") COUNT 0
		S: r8 OK SEARCH completed
		C: r9 SEARCH (OR BODY "number 2." BODY "NUMBER 5.") UNSEEN
		S: * SEARCH 2 5
		S: r9 OK SEARCH completed
		C: s1 SEARCH HEADER Message-ID m4@ SENTON 1-Sep-2026 FROM bob
		S: * SEARCH 4
		S: s1 OK SEARCH completed
		C: s2 SEARCH TEXT "hello number 6" SMALLER 100000 LARGER 10 BEFORE 1-Jan-2100 SINCE 1-Jan-2000
		S: * SEARCH 6
		S: s2 OK SEARCH completed
		C: s3 SEARCH SUBJECT
		S: s3 BAD syntax error: expected SP at end of command
		C: s4 ENABLE IMAP4rev2
		S: * ENABLED IMAP4rev2
		S: s4 OK ENABLE completed
		C: s5 SEARCH SUBJECT apple
		S: * ESEARCH (TAG "s5") ALL 1,3,6
		S: s5 OK SEARCH completed
		C: s6 SELECT INBOX
		S: * OK [CLOSED] Previous mailbox closed
		S: * FLAGS (<*>)
		S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
		S: * 6 EXISTS
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 7] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: * LIST () "/" INBOX
		S: s6 OK [READ-WRITE] SELECT completed
	`, nil)
}

func TestTranscriptAppend(t *testing.T) {
	e := newEnvStore(t, store.Options{Summarize: Summarize, DefaultQuota: 1 << 10}, func(o *Options) { o.Limits.MaxMessageSize = 2000 })
	e.transcript(t, greeting+`
		C: p0 APPEND INBOX {5}
		S: p0 NO Log in first
		`+login+`
		C: p1 APPEND INBOX (\Seen) " 7-Feb-2026 21:52:25 -0800" {20}
		S: + Ready for literal data
		C: Subject: a
		C: 
		C: body 1
		S: p1 OK [APPENDUID <n> 1] APPEND completed
		C: p2 APPEND INBOX {20+}
		C: Subject: b
		C: 
		C: body 2
		S: p2 OK [APPENDUID <n> 2] APPEND completed
		C: p3 APPEND Nosuch {1+}
		C: x
		S: p3 NO [TRYCREATE] No such mailbox
		C: p4 APPEND INBOX {1500}
		S: p4 NO [OVERQUOTA] Quota exceeded: 1 of 1 KiB used
		C: p5 APPEND INBOX {5000}
		S: p5 NO [TOOBIG] message too large (limit 2000 bytes)
		C: p6 NOOP
		S: p6 OK NOOP completed
		C: s1 SELECT INBOX
		S: * FLAGS (<*>)
		S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 2] First unseen
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: s1 OK [READ-WRITE] SELECT completed
		C: p7 FETCH 1 (FLAGS INTERNALDATE)
		S: * 1 FETCH (FLAGS (\Seen) INTERNALDATE "<*>")
		S: p7 OK FETCH completed
		C: p8 APPEND INBOX {3+}
		C: a=b
		S: * 3 EXISTS
		S: p8 OK [APPENDUID <n> 3] APPEND completed
		C: p9 APPEND INBOX UTF8 (~{13+}
		C: Subject: ä
		C: )
		S: * 4 EXISTS
		S: p9 OK [APPENDUID <n> 4] APPEND completed
		C: p10 FETCH 4 BODY.PEEK[HEADER.FIELDS (SUBJECT)]
		S: * 4 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}
		S: Subject: ä
		S: 
		S: )
		S: p10 OK FETCH completed
	`, nil)
}

// deltaChatMetadata is what Delta Chat 2.57 asks after login (chatmail.md §2.3).
const deltaChatMetadata = `GETMETADATA "" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay /shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients)`

func TestTranscriptMetadata(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxMetadataValue = 100
		o.Limits.MaxMetadataEntries = 4
	})
	ctx := context.Background()
	if err := e.st.SetMetadata(ctx, store.Server, 0, []store.MetaEntry{
		{Name: "/shared/admin", Value: []byte("mailto:root@example.org")},
		{Name: "/shared/vendor/deltachat/maxsmtprecipients", Value: []byte("1000")},
	}, 0); err != nil {
		t.Fatal(err)
	}
	e.transcript(t, greeting+login+`
		C: m1 `+deltaChatMetadata+`
		S: * METADATA "" (/shared/comment NIL /shared/admin {23}
		S: mailto:root@example.org /shared/vendor/deltachat/irohrelay NIL /shared/vendor/deltachat/turn NIL /shared/vendor/deltachat/maxsmtprecipients {4}
		S: 1000)
		S: m1 OK Getmetadata completed.
		L: a01 SETMETADATA INBOX (/private/devicetoken "1111" )
		S: a01 OK Setmetadata completed.
		L: a02 GETMETADATA INBOX /private/devicetoken
		S: * METADATA INBOX (/private/devicetoken {4}
		S: 1111)
		S: a02 OK Getmetadata completed.
		C: m2 SETMETADATA "" (/private/vendor/x/a {3+}
		C: one /private/vendor/x/b/c "two" /private/vendor/x/long "`+strings.Repeat("y", 40)+`")
		S: m2 OK Setmetadata completed.
		C: m3 GETMETADATA (DEPTH 1) "" /private/vendor/x
		S: * METADATA "" (/private/vendor/x/a {3}
		S: one /private/vendor/x/long {40}
		S: `+strings.Repeat("y", 40)+`)
		S: m3 OK Getmetadata completed.
		C: m4 GETMETADATA (DEPTH infinity MAXSIZE 10) "" (/private/vendor/x)
		S: * METADATA "" (/private/vendor/x/a {3}
		S: one /private/vendor/x/b/c {3}
		S: two)
		S: m4 OK [METADATA LONGENTRIES 40] Getmetadata completed.
		C: m5 SETMETADATA "" (/private/too/big "`+strings.Repeat("z", 101)+`")
		S: m5 NO [METADATA MAXSIZE 100] Value of /private/too/big too long
		C: m6 SETMETADATA "" (/private/one/more "x" /private/and/another "y")
		S: m6 NO [METADATA TOOMANY] Too many metadata entries
		C: m7 SETMETADATA "" (/private/vendor/x/long NIL)
		S: m7 OK Setmetadata completed.
		C: m8 SETMETADATA "" (/shared/admin "mailto:me@example.org")
		S: m8 NO [NOPERM] Server entries are read-only: /shared/admin
		C: m9 GETMETADATA "" /bogus
		S: m9 BAD Invalid entry name "/bogus"
		C: n1 GETMETADATA Nosuch /private/x
		S: n1 NO [NONEXISTENT] No such mailbox
		C: n2 SETMETADATA INBOX (/private/Comment "Hello")
		S: n2 OK Setmetadata completed.
		C: n3 GETMETADATA INBOX (/PRIVATE/COMMENT)
		S: * METADATA INBOX (/private/comment {5}
		S: Hello)
		S: n3 OK Getmetadata completed.
	`, nil)
}

// testHook owns /private/vendor/test/ on the server entry.
type testHook struct{ set []MetadataEntry }

func (h *testHook) Owns(mailbox, entry string) bool {
	return mailbox == "" && strings.HasPrefix(entry, "/private/vendor/test")
}

func (h *testHook) GetMetadata(_ context.Context, _ *store.Account, _ string, names []string, _ int) ([]MetadataEntry, error) {
	if names[0] == "/private/vendor/test/panic" {
		panic("test hook")
	}
	return []MetadataEntry{{Name: "/private/vendor/test/root", Value: []byte("COI")}}, nil
}

func (h *testHook) SetMetadata(_ context.Context, _ *store.Account, _ string, es []MetadataEntry) error {
	for _, e := range es {
		if string(e.Value) != "yes" {
			return &CommandError{Code: "CANNOT", Text: "invalid value for " + e.Name}
		}
	}
	h.set = append(h.set, es...)
	return nil
}

func TestTranscriptMetadataHookAndPanic(t *testing.T) {
	hook := &testHook{}
	e := newEnv(t, func(o *Options) {
		o.MetadataHook = hook
		o.ExtraCapabilities = func(*store.Account) []string { return []string{"XCHATMAIL"} }
	})
	e.transcript(t, greeting+`
		C: a1 LOGIN alice@example.org password123
		S: a1 OK [CAPABILITY <*> COMPRESS=DEFLATE XCHATMAIL] Logged in
		C: h1 GETMETADATA "" (/private/vendor/test/root /private/other)
		S: * METADATA "" (/private/vendor/test/root {3}
		S: COI /private/other NIL)
		S: h1 OK Getmetadata completed.
		C: h2 SETMETADATA "" (/private/vendor/test/enabled "true")
		S: h2 NO [CANNOT] invalid value for /private/vendor/test/enabled
		C: h3 SETMETADATA "" (/private/vendor/test/enabled "yes")
		S: h3 OK Setmetadata completed.
		C: h4 GETMETADATA "" /private/vendor/test/panic
		S: h4 BAD internal error
		S: * BYE internal error
	`, nil)
	if len(hook.set) != 1 || hook.set[0].Name != "/private/vendor/test/enabled" {
		t.Errorf("hook got %+v", hook.set)
	}
	// The server goes on serving other connections.
	e.transcript(t, greeting+login+`
		C: h5 NOOP
		S: h5 OK NOOP completed
	`, nil)
}

func TestTranscriptQuota(t *testing.T) {
	e := newEnvStore(t, store.Options{Summarize: Summarize, DefaultQuota: 500 << 20})
	e.deliver(e.acc, "INBOX", testMessage(1, "x"))
	e.transcript(t, greeting+login+`
		C: q1 GETQUOTAROOT INBOX
		S: * QUOTAROOT INBOX ""
		S: * QUOTA "" (STORAGE 1 512000)
		S: q1 OK GETQUOTAROOT completed
		C: q2 GETQUOTA ""
		S: * QUOTA "" (STORAGE 1 512000)
		S: q2 OK GETQUOTA completed
		C: q3 GETQUOTA "other"
		S: q3 NO [NONEXISTENT] No such quota root
		C: q4 SETQUOTA "" (STORAGE 10)
		S: q4 NO [NOPERM] Quotas are set by the administrator
		C: q5 GETQUOTAROOT Nosuch
		S: q5 NO [NONEXISTENT] No such mailbox
	`, nil)
	unlimited := newEnv(t)
	unlimited.transcript(t, greeting+login+`
		C: q1 GETQUOTAROOT INBOX
		S: * QUOTAROOT INBOX
		S: q1 OK GETQUOTAROOT completed
	`, nil)
}

func TestTranscriptIDCapabilityNoop(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Compress = false })
	e.transcript(t, greeting+`
		C: a0 ID ("name" "Delta Chat")
		S: * ID ("name" "coibox" "vendor" "coibox")
		S: a0 OK ID completed
		C: a1 LOGIN alice@example.org password123
		S: a1 OK [CAPABILITY <*> QUOTA=RES-MESSAGE] Logged in
		C: c1 CAPABILITY
		S: * CAPABILITY <*> QUOTA=RES-MESSAGE
		S: c1 OK CAPABILITY completed
		C: c2 COMPRESS DEFLATE
		S: c2 BAD COMPRESS is not available here
		C: c3 ENABLE CONDSTORE X-UNKNOWN
		S: * ENABLED CONDSTORE
		S: c3 OK ENABLE completed
		C: c4 NOOP
		S: c4 OK NOOP completed
		C: c5 LOGOUT
		S: * BYE Logging out
		S: c5 OK LOGOUT completed
	`, nil)
}

func TestTranscriptRenameEdges(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "moved by rename"))
	e.transcript(t, greeting+login+`
		C: c1 CREATE a/b
		S: c1 OK CREATE completed
		C: c2 CREATE z/b
		S: c2 OK CREATE completed
		C: c3 DELETE z
		S: c3 OK DELETE completed
		C: r1 RENAME a z
		S: r1 NO [ALREADYEXISTS] Mailbox z/b already exists
		C: r2 RENAME a a/x
		S: r2 NO [CANNOT] Cannot move a mailbox into itself
		C: r3 RENAME nosuch y
		S: r3 NO [NONEXISTENT] No such mailbox
		C: r4 RENAME a Sent
		S: r4 NO [ALREADYEXISTS] Mailbox already exists
		C: r5 RENAME INBOX Old/Inbox
		S: r5 OK RENAME completed
		C: r6 STATUS Old/Inbox (MESSAGES)
		S: * STATUS Old/Inbox (MESSAGES 1)
		S: r6 OK STATUS completed
		C: r7 STATUS INBOX (MESSAGES)
		S: * STATUS INBOX (MESSAGES 0)
		S: r7 OK STATUS completed
	`, nil)
}

// TestTranscriptDeltaChatPrefetch is the prefetch and download of Delta Chat 2.57
// (chatmail.md §2.2): the reply echoes the section name with the field list.
func TestTranscriptDeltaChatPrefetch(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", "Message-ID: <dc@example.org>\nFrom: bob@example.net\nChat-Version: 1.0\nDate: Tue, 01 Sep 2026 10:00:00 +0200\n\n"+strings.Repeat("x", 100000)+"\n")
	e.transcript(t, greeting+login+selectUnseen+`
		C: p1 UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE X-MICROSOFT-ORIGINAL-MESSAGE-ID FROM CONTENT-TYPE SECURE-JOIN CHAT-VERSION CHAT-IS-POST-MESSAGE AUTOCRYPT-SETUP-MESSAGE)])
		S: * 1 FETCH (UID 1 RFC822.SIZE 100115 BODY[HEADER.FIELDS (MESSAGE-ID DATE X-MICROSOFT-ORIGINAL-MESSAGE-ID FROM CONTENT-TYPE SECURE-JOIN CHAT-VERSION CHAT-IS-POST-MESSAGE AUTOCRYPT-SETUP-MESSAGE)] {113}
		S: Message-ID: <dc@example.org>
		S: From: bob@example.net
		S: Chat-Version: 1.0
		S: Date: Tue, 01 Sep 2026 10:00:00 +0200
		S: 
		S: )
		S: p1 OK UID FETCH completed
		C: p2 UID FETCH 1 (FLAGS BODY.PEEK[])
		S: * 1 FETCH (UID 1 FLAGS () BODY[] {100115}
		S: Message-ID: <dc@example.org>
		S: From: bob@example.net
		S: Chat-Version: 1.0
		S: Date: Tue, 01 Sep 2026 10:00:00 +0200
		S: 
		S: <*>
		S: )
		S: p2 OK UID FETCH completed
		C: p3 UID STORE 1 +FLAGS (\Seen)
		S: * 1 FETCH (UID 1 FLAGS (\Seen))
		S: p3 OK UID STORE completed
	`, nil)
}

// TestTranscriptTildeAtom: "~" is an atom character; only "~{" starts a literal8
// (RFC 9051 §9), so mailbox names and patterns may start with it (issue 8 item 3).
func TestTranscriptTildeAtom(t *testing.T) {
	e := newEnv(t)
	e.transcript(t, greeting+login+`
		C: a2 LIST "" ~foo
		S: a2 OK LIST completed
		C: a3 CREATE ~bar
		S: a3 OK CREATE completed
		C: a4 LIST "" ~bar
		S: * LIST (\HasNoChildren) "/" ~bar
		S: a4 OK LIST completed
		C: a5 SELECT ~bar
		S: * FLAGS (<*>)
		S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
		S: * 0 EXISTS
		S: * 0 RECENT
		S: * OK [UIDVALIDITY <n>] UIDs valid
		S: * OK [UIDNEXT 1] Predicted next UID
		S: * OK [HIGHESTMODSEQ <n>] Highest
		S: a5 OK [READ-WRITE] SELECT completed
	`, nil)
}

// TestTranscriptEnvelopeGroups: RFC 5322 groups survive in ENVELOPE as RFC 9051
// §7.5.2 writes them, empty groups too, and SEARCH finds a group by its name
// (issue 8 items 6 and 8).
func TestTranscriptEnvelopeGroups(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", `Date: Tue, 01 Sep 2026 10:00:00 +0200
From: Bob <bob@example.net>
To: team: a@b.example, "Carol C." <c@d.example>;, solo@e.example
Cc: undisclosed-recipients:;
Subject: groups
Message-ID: <g1@example.net>

hi
`)
	e.transcript(t, greeting+login+selectUnseen+`
		C: a2 FETCH 1 (ENVELOPE)
		S: * 1 FETCH (ENVELOPE ("Tue, 01 Sep 2026 10:00:00 +0200" "groups" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) ((NIL NIL "team" NIL)(NIL NIL "a" "b.example")("Carol C." NIL "c" "d.example")(NIL NIL NIL NIL)(NIL NIL "solo" "e.example")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL "<g1@example.net>"))
		S: a2 OK FETCH completed
		C: a3 SEARCH TO team
		S: * SEARCH 1
		S: a3 OK SEARCH completed
		C: a4 SEARCH TO solo@e.example
		S: * SEARCH 1
		S: a4 OK SEARCH completed
	`, nil)
}

// TestTranscriptAddressComments: comments anywhere RFC 5322 §3.4.1 allows them do
// not cost an address its place in ENVELOPE, nor SEARCH FROM/TO/CC its match; an
// address written the old way, `addr (Name)`, keeps the comment as its name
// (issue 8 item 8).
func TestTranscriptAddressComments(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", `Date: Tue, 01 Sep 2026 10:00:00 +0200
From: <user (comment)@ (c) domain.org>
To: Jo (x) <jo(y)@(z)ex.org>, plain@ex.org
Cc: cc(c)@cc.example (Real Name)
Subject: comments
Message-ID: <c1@example.net>

hi
`)
	e.transcript(t, greeting+login+selectUnseen+`
		C: a2 FETCH 1 (ENVELOPE)
		S: * 1 FETCH (ENVELOPE ("Tue, 01 Sep 2026 10:00:00 +0200" "comments" ((NIL NIL "user" "domain.org")) ((NIL NIL "user" "domain.org")) ((NIL NIL "user" "domain.org")) (("Jo" NIL "jo" "ex.org")(NIL NIL "plain" "ex.org")) (("Real Name" NIL "cc" "cc.example")) NIL NIL "<c1@example.net>"))
		S: a2 OK FETCH completed
		C: a3 SEARCH FROM user@domain.org
		S: * SEARCH 1
		S: a3 OK SEARCH completed
		C: a4 SEARCH TO jo@ex.org
		S: * SEARCH 1
		S: a4 OK SEARCH completed
		C: a5 SEARCH CC "real name"
		S: * SEARCH 1
		S: a5 OK SEARCH completed
		C: a6 SEARCH FROM comment
		S: * SEARCH
		S: a6 OK SEARCH completed
	`, nil)
}

// TestTranscriptCondstoreImplicit: the first command that enables CONDSTORE without
// ENABLE tells the HIGHESTMODSEQ (RFC 7162 §3.1), and SEARCH RETURN (MIN)/(MAX)
// with a MODSEQ criterion reports the MODSEQ of the message returned (§3.1.5), not
// the mailbox's highest (issue 8 item 5). The HIGHESTMODSEQ told is the session's:
// what it has reported, so that nothing another session did can be skipped.
func TestTranscriptCondstoreImplicit(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(e.acc, "INBOX", testMessage(i, "m"))
	}
	e.transcript(t, greeting+login+selectUnseen+`
		C: a2 STORE 3 +FLAGS.SILENT (\Flagged)
		S: a2 OK STORE completed
		C: a3 SEARCH RETURN (MIN) MODSEQ 1
		S: * OK [HIGHESTMODSEQ 4] Highest
		S: * ESEARCH (TAG "a3") MIN 1 MODSEQ 2
		S: a3 OK SEARCH completed
		C: a4 SEARCH RETURN (MAX) MODSEQ 1
		S: * ESEARCH (TAG "a4") MAX 3 MODSEQ 5
		S: a4 OK SEARCH completed
		C: a5 SEARCH RETURN (MIN MAX) MODSEQ 1
		S: * ESEARCH (TAG "a5") MIN 1 MAX 3 MODSEQ 5
		S: a5 OK SEARCH completed
		C: a6 SEARCH RETURN (COUNT) MODSEQ 3
		S: * ESEARCH (TAG "a6") COUNT 2 MODSEQ 5
		S: a6 OK SEARCH completed
	`, nil)
}

// TestTranscriptUpdatesOnEveryCommand: new mail is told after every command, FETCH,
// STORE and SEARCH included (EXISTS), and expunges after the UID forms too, where
// RFC 9051 §7.5.1 allows them; by sequence number they wait for the next command
// that may carry them (issue 8 item 12).
func TestTranscriptUpdatesOnEveryCommand(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "one"))
	e.deliver(e.acc, "INBOX", testMessage(2, "two"))
	mb, err := e.st.Mailbox(context.Background(), e.acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	settle := func() { time.Sleep(100 * time.Millisecond) } // the poke is asynchronous
	e.transcript(t, greeting+login+selectUnseen+`
		! deliver
		C: a2 UID SEARCH ALL
		S: * SEARCH 1 2
		S: * 3 EXISTS
		S: a2 OK UID SEARCH completed
		! expunge
		C: a3 FETCH 1 (UID)
		S: * 1 FETCH (UID 1)
		S: a3 OK FETCH completed
		C: a4 UID FETCH 3 (UID)
		S: * 3 FETCH (UID 3)
		S: * 1 EXPUNGE
		S: a4 OK UID FETCH completed
		! deliver
		C: a5 SEARCH ALL
		S: * SEARCH 1 2
		S: * 3 EXISTS
		S: a5 OK SEARCH completed
	`, map[string]func(){
		"deliver": func() { e.deliver(e.acc, "INBOX", testMessage(9, "new")); settle() },
		"expunge": func() {
			if _, err := e.st.StoreFlags(context.Background(), mb.ID, []uint32{1}, store.FlagsAdd, []string{store.FlagDeleted}, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.Expunge(context.Background(), mb.ID, []uint32{1}); err != nil {
				t.Fatal(err)
			}
			settle()
		},
	})
}

// TestTranscriptKeywordFlagsFirst: a keyword another session set is announced in
// FLAGS before the FETCH that shows it (issue 8 item 2).
func TestTranscriptKeywordFlagsFirst(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "one"))
	mb, err := e.st.Mailbox(context.Background(), e.acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	e.transcript(t, greeting+login+selectUnseen+`
		! keyword
		C: a2 FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Fresh)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Fresh \*)] Flags permitted
		S: * 1 FETCH (FLAGS ($Fresh) BODY[HEADER.FIELDS (SUBJECT)] {16}
		S: Subject: one
		S: 
		S: )
		S: a2 OK FETCH completed
	`, map[string]func(){"keyword": func() {
		if _, err := e.st.StoreFlags(context.Background(), mb.ID, []uint32{1}, store.FlagsAdd, []string{"$Fresh"}, 0); err != nil {
			t.Fatal(err)
		}
	}})
}

// TestTranscriptFetchExpungedMeanwhile: a message expunged by another session that
// this one still numbers gets no data, never an empty header or body: FETCH says NO
// [EXPUNGEISSUED]; UID FETCH treats it as a UID that does not exist (issue 8 item 1).
func TestTranscriptFetchExpungedMeanwhile(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.acc, "INBOX", testMessage(1, "one"))
	e.deliver(e.acc, "INBOX", testMessage(2, "two"))
	mb, err := e.st.Mailbox(context.Background(), e.acc.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	e.transcript(t, greeting+login+selectUnseen+`
		! expunge
		C: a2 FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])
		S: * 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}
		S: Subject: one
		S: 
		S: )
		S: a2 NO [EXPUNGEISSUED] Some of the requested messages no longer exist
		C: a3 FETCH 2 (ENVELOPE)
		S: a3 NO [EXPUNGEISSUED] Some of the requested messages no longer exist
		C: a4 UID FETCH 2 (BODY.PEEK[])
		S: * 2 EXPUNGE
		S: a4 OK UID FETCH completed
	`, map[string]func(){"expunge": func() {
		if _, err := e.st.StoreFlags(context.Background(), mb.ID, []uint32{2}, store.FlagsAdd, []string{store.FlagDeleted}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Expunge(context.Background(), mb.ID, []uint32{2}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}})
}
