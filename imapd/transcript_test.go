package imapd

import (
	"testing"
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
