package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coibox/coibox/store"
)

// These tests are the regression suite for the cross-account leak (issue 7): a
// mailbox row id reused after DELETE (or after an account's deletion) made the
// summary cache answer FETCH and SEARCH for the new mailbox from the deleted one's
// messages. Each scenario reads a secret into the cache, deletes its mailbox, makes
// a new mailbox that SQLite would have given the same row id, and checks every
// answer against the new mailbox's one message, value by value.

// secretMsg is the message that must never be seen again once its mailbox is gone:
// multipart, older, larger, from another sender than harmlessMsg, so that every
// FETCH item and SEARCH key below tells the two apart.
var secretMsg = strings.Join([]string{
	"Date: Mon, 02 Nov 2026 09:00:00 +0000",
	"From: Bank <bank@example.org>",
	"To: alice@example.org",
	"Subject: your PIN is 4711",
	"Message-ID: <pin@example.org>",
	"MIME-Version: 1.0",
	`Content-Type: multipart/mixed; boundary="b1"`,
	"",
	"--b1",
	"Content-Type: text/plain; charset=utf-8",
	"",
	"Your PIN is 4711. Keep this message to yourself, it is long on purpose.",
	"--b1",
	"Content-Type: application/octet-stream",
	"Content-Transfer-Encoding: base64",
	"",
	"UElOIDQ3MTEK",
	"--b1--",
}, "\r\n")

const secretEnvelope = `("Mon, 02 Nov 2026 09:00:00 +0000" "your PIN is 4711" (("Bank" NIL "bank" "example.org")) (("Bank" NIL "bank" "example.org")) (("Bank" NIL "bank" "example.org")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<pin@example.org>")`

// harmlessMsg is the new mailbox's only message; its owner is filled in.
func harmlessMsg(owner string) string {
	return strings.Join([]string{
		"Date: Tue, 01 Dec 2026 12:00:00 +0000",
		"From: Friend <friend@example.net>",
		"To: " + owner,
		"Subject: harmless",
		"Message-ID: <harmless@example.net>",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"hi",
		"",
	}, "\r\n")
}

// appendLines is an APPEND of msg with a LITERAL+ literal, as transcript lines: the
// CRLF after the last line ends the command (when msg ends in CRLF, that last line
// is empty).
func appendLines(tag, mailbox, date, msg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "C: %s APPEND %s () %q {%d+}\n", tag, mailbox, date, len(msg))
	for _, l := range strings.Split(msg, "\r\n") {
		b.WriteString("C: " + l + "\n")
	}
	return b.String()
}

// selectLines selects a mailbox holding n messages, none seen.
func selectLines(tag, mailbox string, n int) string {
	unseen := ""
	if n > 0 {
		unseen = "S: * OK [UNSEEN 1] First unseen\n"
	}
	return fmt.Sprintf(`C: %[1]s SELECT %[2]s
S: * FLAGS (<*>)
S: * OK [PERMANENTFLAGS (<*>)] Flags permitted
S: * %[3]d EXISTS
S: * 0 RECENT
%[4]sS: * OK [UIDVALIDITY <n>] UIDs valid
S: * OK [UIDNEXT %[5]d] Predicted next UID
S: * OK [HIGHESTMODSEQ <n>] Highest
S: %[1]s OK [READ-WRITE] SELECT completed
`, tag, mailbox, n, unseen, n+1)
}

// leakSecret is alice's part of the report: the secret goes into a new mailbox,
// into the cache (FETCH ENVELOPE, SEARCH), and the mailbox is deleted.
func leakSecret(user, mailbox string) string {
	return greeting + `
C: a1 LOGIN ` + user + ` password123
S: a1 OK [CAPABILITY <*>] Logged in
C: a2 CREATE ` + mailbox + `
S: a2 OK CREATE completed
` + appendLines("a3", mailbox, "02-Nov-2026 09:00:00 +0000", secretMsg) + `S: a3 OK [APPENDUID <n> 1] APPEND completed
` + selectLines("a4", mailbox, 1) + `C: a5 FETCH 1 (ENVELOPE RFC822.SIZE INTERNALDATE BODYSTRUCTURE)
S: * 1 FETCH (INTERNALDATE " 2-Nov-2026 09:00:00 +0000" RFC822.SIZE ` + fmt.Sprint(len(secretMsg)) + ` ENVELOPE ` + secretEnvelope + ` BODYSTRUCTURE <*>)
S: a5 OK FETCH completed
C: a6 SEARCH SUBJECT PIN
S: * SEARCH 1
S: a6 OK SEARCH completed
C: a7 CLOSE
S: a7 OK CLOSE completed
C: a8 DELETE ` + mailbox + `
S: a8 OK DELETE completed
C: a9 LOGOUT
S: * BYE Logging out
S: a9 OK LOGOUT completed
`
}

// checkHarmless is the other side: a new mailbox with one message of its own, and
// every answer about it must be about that message alone.
func checkHarmless(user, mailbox string) string {
	msg := harmlessMsg(user)
	local, domain, _ := strings.Cut(user, "@")
	env := `("Tue, 01 Dec 2026 12:00:00 +0000" "harmless" (("Friend" NIL "friend" "example.net")) (("Friend" NIL "friend" "example.net")) (("Friend" NIL "friend" "example.net")) ((NIL NIL "` + local + `" "` + domain + `")) NIL NIL NIL "<harmless@example.net>")`
	size := len(msg)
	return greeting + `
C: b1 LOGIN ` + user + ` password123
S: b1 OK [CAPABILITY <*>] Logged in
C: b2 CREATE ` + mailbox + `
S: b2 OK CREATE completed
` + appendLines("b3", mailbox, "01-Dec-2026 12:00:00 +0000", msg) + `S: b3 OK [APPENDUID <n> 1] APPEND completed
C: b4 STATUS ` + mailbox + ` (MESSAGES UIDNEXT UNSEEN SIZE)
S: * STATUS ` + mailbox + ` (MESSAGES 1 UIDNEXT 2 UNSEEN 1 SIZE ` + fmt.Sprint(size) + `)
S: b4 OK STATUS completed
` + selectLines("b5", mailbox, 1) + `C: b6 FETCH 1 (ENVELOPE RFC822.SIZE)
S: * 1 FETCH (RFC822.SIZE ` + fmt.Sprint(size) + ` ENVELOPE ` + env + `)
S: b6 OK FETCH completed
C: b7 FETCH 1 (INTERNALDATE BODYSTRUCTURE)
S: * 1 FETCH (INTERNALDATE " 1-Dec-2026 12:00:00 +0000" BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 1 NIL NIL NIL NIL))
S: b7 OK FETCH completed
C: b8 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])
S: * 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {56}
S: From: Friend <friend@example.net>
S: Subject: harmless
S: 
S: )
S: b8 OK FETCH completed
C: b9 SEARCH SUBJECT PIN
S: * SEARCH
S: b9 OK SEARCH completed
C: b10 SEARCH SUBJECT harmless
S: * SEARCH 1
S: b10 OK SEARCH completed
C: b11 SEARCH FROM bank
S: * SEARCH
S: b11 OK SEARCH completed
C: b12 SEARCH FROM friend
S: * SEARCH 1
S: b12 OK SEARCH completed
C: b13 SEARCH LARGER ` + fmt.Sprint(size) + `
S: * SEARCH
S: b13 OK SEARCH completed
C: b14 SEARCH SMALLER ` + fmt.Sprint(size+1) + `
S: * SEARCH 1
S: b14 OK SEARCH completed
C: b15 SEARCH SENTBEFORE 15-Nov-2026
S: * SEARCH
S: b15 OK SEARCH completed
C: b16 SEARCH SENTSINCE 15-Nov-2026
S: * SEARCH 1
S: b16 OK SEARCH completed
C: b17 SEARCH BEFORE 15-Nov-2026
S: * SEARCH
S: b17 OK SEARCH completed
C: b18 SEARCH BODY 4711
S: * SEARCH
S: b18 OK SEARCH completed
C: b19 LOGOUT
S: * BYE Logging out
S: b19 OK LOGOUT completed
`
}

// TestReuseAcrossAccounts is the report's transcript: alice's deleted mailbox must
// tell mallory nothing.
func TestReuseAcrossAccounts(t *testing.T) {
	e := newEnv(t)
	e.addAccount("mallory@example.org")
	e.transcript(t, leakSecret("alice@example.org", "Secret"), nil)
	e.transcript(t, checkHarmless("mallory@example.org", "Mine"), nil)
}

// TestReuseDeleteCreate is the same within one account: DELETE then CREATE.
func TestReuseDeleteCreate(t *testing.T) {
	e := newEnv(t)
	e.transcript(t, leakSecret("alice@example.org", "Secret"), nil)
	e.transcript(t, checkHarmless("alice@example.org", "Secret"), nil)
}

// TestReuseAccountRecreated deletes the account holding the cached secret; a new
// account (whose row and mailboxes SQLite would number as the old ones) must see
// only its own mail, in a mailbox of the same name and in its INBOX.
func TestReuseAccountRecreated(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.addAccount("old@example.org")
	e.transcript(t, strings.Replace(leakSecret("old@example.org", "Secret"), "C: a8 DELETE Secret\nS: a8 OK DELETE completed\n", "", 1), nil)
	// Fill the cache for the old INBOX too.
	e.deliver(e.acc, "INBOX", testMessage(1, "alice's own"))
	if err := e.st.DeleteAccount(ctx, "old@example.org"); err != nil {
		t.Fatal(err)
	}
	e.addAccount("new@example.org")
	e.transcript(t, checkHarmless("new@example.org", "Secret"), nil)
}

// TestReuseAccountRecreatedInbox: the INBOX of an account made after another's
// deletion starts empty, whatever the old INBOX held in the cache.
func TestReuseAccountRecreatedInbox(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	old := e.addAccount("old@example.org")
	e.deliverRaw(old, "INBOX", secretMsg)
	e.transcript(t, greeting+`
C: a1 LOGIN old@example.org password123
S: a1 OK [CAPABILITY <*>] Logged in
`+selectLines("a2", "INBOX", 1)+`C: a3 FETCH 1 (ENVELOPE)
S: * 1 FETCH (ENVELOPE `+secretEnvelope+`)
S: a3 OK FETCH completed
C: a4 LOGOUT
S: * BYE Logging out
S: a4 OK LOGOUT completed
`, nil)
	if err := e.st.DeleteAccount(ctx, "old@example.org"); err != nil {
		t.Fatal(err)
	}
	fresh := e.addAccount("new@example.org")
	e.deliverRaw(fresh, "INBOX", harmlessMsg("new@example.org"))
	e.transcript(t, greeting+`
C: b1 LOGIN new@example.org password123
S: b1 OK [CAPABILITY <*>] Logged in
C: b2 STATUS INBOX (MESSAGES SIZE)
S: * STATUS INBOX (MESSAGES 1 SIZE `+fmt.Sprint(len(harmlessMsg("new@example.org")))+`)
S: b2 OK STATUS completed
`+selectLines("b3", "INBOX", 1)+`C: b4 FETCH 1 (ENVELOPE)
S: * 1 FETCH (ENVELOPE ("Tue, 01 Dec 2026 12:00:00 +0000" "harmless" (("Friend" NIL "friend" "example.net")) (("Friend" NIL "friend" "example.net")) (("Friend" NIL "friend" "example.net")) ((NIL NIL "new" "example.org")) NIL NIL NIL "<harmless@example.net>"))
S: b4 OK FETCH completed
C: b5 SEARCH SUBJECT PIN
S: * SEARCH
S: b5 OK SEARCH completed
C: b6 LOGOUT
S: * BYE Logging out
S: b6 OK LOGOUT completed
`, nil)
}

// deliverRaw stores msg as it is (deliver turns LF into CRLF).
func (e *testEnv) deliverRaw(acc *store.Account, mailbox, msg string) {
	e.t.Helper()
	res, _, err := e.st.Deliver(context.Background(), &store.Delivery{
		Body:    []byte(msg),
		Targets: []store.Target{{AccountID: acc.ID, Mailbox: mailbox}},
	})
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("deliver: %v %v", err, res)
	}
}

// TestAccountDeletedBye: the sessions of a deleted account are told goodbye at
// once, idle or not, so none goes on with an account that no longer exists.
func TestAccountDeletedBye(t *testing.T) {
	e := newEnv(t)
	e.addAccount("old@example.org")
	del := map[string]func(){"delete": func() {
		if err := e.st.DeleteAccount(context.Background(), "old@example.org"); err != nil {
			t.Fatal(err)
		}
	}}
	e.transcript(t, greeting+`
C: a1 LOGIN old@example.org password123
S: a1 OK [CAPABILITY <*>] Logged in
! delete
S: * BYE The account was deleted
`, del)
	e.addAccount("old@example.org")
	e.transcript(t, greeting+`
C: a1 LOGIN old@example.org password123
S: a1 OK [CAPABILITY <*>] Logged in
`+selectLines("a2", "INBOX", 0)+`C: a3 IDLE
S: + idling
! delete
S: * BYE The account was deleted
`, del)
}

// TestReuseRename: RENAME onto an existing mailbox is refused (so no mailbox is
// ever renamed over another), and a name freed by RENAME and created again is a
// new mailbox whose answers are its own, while the renamed one keeps its message.
func TestReuseRename(t *testing.T) {
	e := newEnv(t)
	e.transcript(t, greeting+`
C: a1 LOGIN alice@example.org password123
S: a1 OK [CAPABILITY <*>] Logged in
C: a2 CREATE Secret
S: a2 OK CREATE completed
`+appendLines("a3", "Secret", "02-Nov-2026 09:00:00 +0000", secretMsg)+`S: a3 OK [APPENDUID <n> 1] APPEND completed
`+selectLines("a4", "Secret", 1)+`C: a5 FETCH 1 (ENVELOPE)
S: * 1 FETCH (ENVELOPE `+secretEnvelope+`)
S: a5 OK FETCH completed
C: a6 UNSELECT
S: a6 OK UNSELECT completed
C: a7 CREATE Other
S: a7 OK CREATE completed
C: a8 RENAME Secret Other
S: a8 NO [ALREADYEXISTS] Mailbox already exists
C: a9 RENAME Secret Kept
S: a9 OK RENAME completed
C: a10 LOGOUT
S: * BYE Logging out
S: a10 OK LOGOUT completed
`, nil)
	e.transcript(t, checkHarmless("alice@example.org", "Secret"), nil)
	e.transcript(t, greeting+`
C: c1 LOGIN alice@example.org password123
S: c1 OK [CAPABILITY <*>] Logged in
`+selectLines("c2", "Kept", 1)+`C: c3 FETCH 1 (ENVELOPE)
S: * 1 FETCH (ENVELOPE `+secretEnvelope+`)
S: c3 OK FETCH completed
C: c4 LOGOUT
S: * BYE Logging out
S: c4 OK LOGOUT completed
`, nil)
}

// TestSelectedMailboxDeleted: when another session deletes the mailbox a session has
// selected, the session says so with BYE at its next update, on a command or at once
// in IDLE (issue 8 item 11). IMAP has no untagged response that takes a session back
// to the authenticated state (CLOSED only follows the session's own SELECT, RFC 9051
// §7.1), and every later command in the selected state would have to fail, so BYE,
// as Dovecot does; the client reconnects and finds the mailbox gone from LIST.
func TestSelectedMailboxDeleted(t *testing.T) {
	e := newEnv(t)
	del := map[string]func(){"delete": func() {
		if err := e.st.DeleteMailbox(context.Background(), e.acc.ID, "Doomed"); err != nil {
			t.Fatal(err)
		}
	}}
	for _, idle := range []bool{false, true} {
		if _, err := e.st.CreateMailbox(context.Background(), e.acc.ID, "Doomed", ""); err != nil {
			t.Fatal(err)
		}
		e.deliver(e.acc, "Doomed", testMessage(1, "doomed"))
		wait := "C: a3 NOOP\n"
		if idle {
			wait = "C: a3 IDLE\nS: + idling\n"
		}
		script := greeting + "\nC: a1 LOGIN alice@example.org password123\nS: a1 OK [CAPABILITY <*>] Logged in\n" +
			selectLines("a2", "Doomed", 1) + "! delete\n" + wait +
			"S: * BYE The selected mailbox was deleted by another session\n"
		e.transcript(t, script, del)
	}
}
