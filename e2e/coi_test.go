package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

// imapScript plays a client/server transcript over IMAPS against the built binary.
// "C: " lines are sent (CRLF added); "S: " lines must match the next line read
// exactly, or as a regexp when they start with "re:". Lines starting with "!" run
// the named action.
func imapScript(t *testing.T, addr, script string, actions map[string]func()) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	var log strings.Builder
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimLeft(line, "\t ")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "C: "):
			log.WriteString(line + "\n")
			if _, err := conn.Write([]byte(line[3:] + "\r\n")); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(line, "S: "):
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := r.ReadString('\n')
			got = strings.TrimRight(got, "\r\n")
			log.WriteString("S: " + got + "\n")
			want := line[3:]
			ok := got == want
			if re, isRE := strings.CutPrefix(want, "re:"); isRE {
				ok = regexp.MustCompile("^" + re + "$").MatchString(got)
			}
			if err != nil || !ok {
				t.Fatalf("server sent %q (%v), want %q\ntranscript:\n%s", got, err, want, log.String())
			}
		case strings.HasPrefix(line, "! "):
			actions[strings.TrimSpace(line[2:])]()
		default:
			t.Fatalf("bad script line %q", line)
		}
	}
}

// TestCOITranscripts plays the transcripts of coi spec §9 that need no WebPush: the
// configuration entries, the folders made by enabling, invalid values, the filing
// opt-in, a chat message filed into COI/Chats, and indirect disabling and enabling.
func TestCOITranscripts(t *testing.T) {
	s := startServer(t, options{users: []string{"olga"}})
	user := "olga@" + domain
	login := "C: a LOGIN " + user + " " + s.passwords[user] + "\nS: re:a OK \\[CAPABILITY .* COI WEBPUSH\\] Logged in\n"
	imapScript(t, s.addr.IMAPS, `S: re:\* OK .*
`+login+`
C: b GETMETADATA (DEPTH 1) "" (/private/vendor/vendor.dovecot/coi/config)
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/mailbox-root {3}
S: COI)
S: b OK Getmetadata completed.
C: c SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes)
S: c OK Setmetadata completed.
C: d LIST "" "COI/*"
S: * LIST (\HasNoChildren) "/" COI/Chats
S: * LIST (\HasNoChildren) "/" COI/Contacts
S: d OK LIST completed
C: e LSUB "" "COI/*"
S: * LSUB () "/" COI/Chats
S: e OK LSUB completed
C: g SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled true)
S: g NO [CANNOT] invalid value for /private/vendor/vendor.dovecot/coi/config/enabled: "true"
C: h SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/message-filter inactive)
S: h NO [CANNOT] invalid value for /private/vendor/vendor.dovecot/coi/config/message-filter: "inactive"
C: i SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/mailbox-root myroot)
S: i NO [CANNOT] unable to set /private/vendor/vendor.dovecot/coi/config/mailbox-root
C: i2 SETMETADATA "" (/private/vendor/vendor.dovecot/coi/other x)
S: i2 NO [CANNOT] unable to set /private/vendor/vendor.dovecot/coi/other
C: j SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/message-filter active)
S: j NO [CANNOT] COI filing is disabled for this account
! filing on
C: k SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/message-filter active)
S: k OK Setmetadata completed.
C: k2 GETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled /private/vendor/vendor.dovecot/coi/config/message-filter)
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled {3}
S: yes /private/vendor/vendor.dovecot/coi/config/message-filter {6}
S: active)
S: k2 OK Getmetadata completed.
C: z LOGOUT
S: * BYE Logging out
S: z OK LOGOUT completed
`, map[string]func(){"filing on": func() { s.mustAdmin(t, "", "account", "set", user, "coi_filing=on") }})

	// A chat message arrives: no EXISTS on INBOX, UID 1 in COI/Chats with $Chat; an
	// ordinary message stays in INBOX without it.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, _, err := testutil.DialSMTP(ctx, s.addr.SMTP, testutil.SMTPDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := cl.Hello("peer.e2e.test"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	chat := []byte("From: <x@example.org>\r\nTo: <" + user + ">\r\nSubject: hi\r\nChat-Version: 1.0\r\nMessage-ID: <3f2a@localhost>\r\n\r\nchat\r\n")
	if r, err := cl.Send("x@example.org", []string{user}, chat); err != nil || r.Code != 250 {
		t.Fatalf("chat message: %v %v", r, err)
	}
	if r, err := cl.Send("x@example.org", []string{user}, newMessage("x@example.org", user, "plain-coi@example.org", 300)); err != nil || r.Code != 250 {
		t.Fatalf("plain message: %v %v", r, err)
	}
	c, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, s.passwords[user]).Wait(); err != nil {
		t.Fatal(err)
	}
	flagsOf := func(box string) [][]imap.Flag {
		t.Helper()
		sel, err := c.Select(box, nil).Wait()
		if err != nil {
			t.Fatalf("SELECT %s: %v", box, err)
		}
		if sel.NumMessages == 0 {
			return nil
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, UID: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var out [][]imap.Flag
		for _, m := range msgs {
			out = append(out, m.Flags)
		}
		return out
	}
	if got := flagsOf("COI/Chats"); len(got) != 1 || fmt.Sprint(got[0]) != "[$Chat]" {
		t.Errorf("COI/Chats: flags %v, want one message with $Chat", got)
	}
	if got := flagsOf("INBOX"); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("INBOX: flags %v, want the plain message alone, untagged", got)
	}
	c.Logout().Wait()

	imapScript(t, s.addr.IMAPS, `S: re:\* OK .*
`+login+`
C: p RENAME COI/Chats Archive/Chats
S: p NO [CANNOT] COI mailbox can't be renamed
C: p2 RENAME COI Elsewhere
S: p2 NO [CANNOT] COI mailbox can't be renamed
C: q DELETE COI/Chats
S: q OK DELETE completed
C: r GETMETADATA "" /private/vendor/vendor.dovecot/coi/config/enabled
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled NIL)
S: r OK Getmetadata completed.
C: r2 DELETE COI/Contacts
S: r2 OK DELETE completed
C: s CREATE COI/Chats
S: s OK CREATE completed
C: t GETMETADATA "" /private/vendor/vendor.dovecot/coi/config/enabled
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled {3}
S: yes)
S: t OK Getmetadata completed.
C: u LIST "" "COI/*"
S: * LIST (\HasNoChildren) "/" COI/Chats
S: * LIST (\HasNoChildren) "/" COI/Contacts
S: u OK LIST completed
C: v RENAME COI/Chats Trash/Chats
S: v OK RENAME completed
C: w GETMETADATA "" /private/vendor/vendor.dovecot/coi/config/enabled
S: * METADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled NIL)
S: w OK Getmetadata completed.
C: z LOGOUT
S: * BYE Logging out
S: z OK LOGOUT completed
`, nil)

	// seen mode: a chat message stays in INBOX until a client marks it \Seen; a UID
	// STORE then hears of the move before its tagged OK.
	imapScript(t, s.addr.IMAPS, `S: re:\* OK .*
`+login+`
C: a1 SETMETADATA "" (/private/vendor/vendor.dovecot/coi/config/enabled yes /private/vendor/vendor.dovecot/coi/config/message-filter seen)
S: a1 OK Setmetadata completed.
C: z LOGOUT
S: * BYE Logging out
S: z OK LOGOUT completed
`, nil)
	chat2 := []byte("From: <x@example.org>\r\nTo: <" + user + ">\r\nSubject: seen\r\nMessage-ID: <chat$seen.1@example.org>\r\n\r\nchat\r\n")
	if r, err := cl.Send("x@example.org", []string{user}, chat2); err != nil || r.Code != 250 {
		t.Fatalf("chat message: %v %v", r, err)
	}
	imapScript(t, s.addr.IMAPS, `S: re:\* OK .*
`+login+`
C: b1 SELECT INBOX
S: re:\* FLAGS .*
S: re:\* OK \[PERMANENTFLAGS .*\\\*\)\] .*
S: * 2 EXISTS
S: re:.*
S: re:.*
S: re:.*
S: re:.*
S: re:.*
S: re:b1 OK \[READ-WRITE\] SELECT completed
C: b2 UID STORE 2 +FLAGS (\Seen)
S: re:\* 2 FETCH \(UID 2 FLAGS \((\$Chat \\Seen|\\Seen \$Chat)\)\)
S: * 2 EXPUNGE
S: b2 OK UID STORE completed
C: b3 STATUS COI/Chats (MESSAGES)
S: * STATUS COI/Chats (MESSAGES 1)
S: b3 OK STATUS completed
C: z LOGOUT
S: * BYE Logging out
S: z OK LOGOUT completed
`, nil)
}
