package deltachat

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/coibox/coibox/internal/testutil"
)

// coiConfig is the prefix of the COI configuration entries (coi spec §4).
const coiConfig = "/private/vendor/vendor.dovecot/coi/config/"

// filedWithin bounds how long the IMAP check waits for both messages to show up. The
// server delivers before its 250, so they are normally there at the first look.
const filedWithin = 10 * time.Second

// coiFiling is the last phase of TestDeltaChat (issue 10): the earlier scenarios ran
// against a server with COI on (coi.enabled is on by default) and no client had set COI
// metadata. Now carol's account gets COI filing (coi spec §7.3) and a COI client's
// configuration (enabled yes, message-filter active); coi.test.mjs opens alice's and
// carol's profiles again and alice writes to carol; a plain mail reaches carol over
// port 25. Then carol's COI/Chats must hold alice's message with $Chat, and her INBOX
// the plain mail without it, and not alice's message.
//
// Carol's core deletes from the server what it has downloaded, so a message in her
// INBOX while it runs does not stay there: coi.test.mjs checks that her core received
// nothing, and the plain mail is sent only after it has closed.
func coiFiling(t *testing.T, node, cfg string, env []string, srv *server, imapsAddr, smtpAddr, carol, password string) {
	coibox(t, cfg, "", "account", "set", carol, "coi_filing=on")
	c := dialIMAP(t, imapsAddr, carol, password)
	yes, active := []byte("yes"), []byte("active")
	if err := c.SetMetadata("", map[string]*[]byte{coiConfig + "enabled": &yes, coiConfig + "message-filter": &active}).Wait(); err != nil {
		t.Fatalf("SETMETADATA enabled yes, message-filter active for %s: %v", carol, err)
	}
	md, err := c.GetMetadata("", []string{coiConfig + "enabled", coiConfig + "message-filter"}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA for %s: %v", carol, err)
	}
	value := func(name string) string {
		if v := md.Entries[coiConfig+name]; v != nil {
			return string(*v)
		}
		return "NIL"
	}
	if e, f := value("enabled"), value("message-filter"); e != "yes" || f != "active" {
		t.Fatalf("%s's COI configuration after SETMETADATA: enabled %q, message-filter %q", carol, e, f)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}

	runScenarios(t, node, "coi.test.mjs", env, srv)
	var state struct {
		ChatMessageID string `json:"chatMessageId"`
	}
	text, err := os.ReadFile(filepath.Join(envValue(env, "DC_WORK_DIR"), "coi-state.json"))
	if err == nil {
		err = json.Unmarshal(text, &state)
	}
	if err != nil || state.ChatMessageID == "" {
		t.Fatalf("coi.test.mjs left no Message-ID of alice's message: %v %q", err, text)
	}
	chatID := state.ChatMessageID
	plainID := sendPlain(t, smtpAddr, carol)

	// Both are usually there at the first look; filedWithin allows for a slow machine.
	c = dialIMAP(t, imapsAddr, carol, password)
	defer c.Close()
	var chats, inbox map[string][]imap.Flag
	for deadline := time.Now().Add(filedWithin); ; time.Sleep(100 * time.Millisecond) {
		chats, inbox = mailbox(t, c, "COI/Chats"), mailbox(t, c, "INBOX")
		_, filed := chats[chatID]
		_, kept := inbox[plainID]
		if filed && kept || time.Now().After(deadline) {
			break
		}
	}
	if flags, ok := chats[chatID]; !ok {
		t.Errorf("alice's message <%s> is not in %s's COI/Chats (it holds %v)\n%s", chatID, carol, chats, srv.tail())
	} else if !hasChat(flags) {
		t.Errorf("alice's message in COI/Chats has flags %v, no $Chat", flags)
	}
	if _, ok := inbox[chatID]; ok {
		t.Errorf("alice's message <%s> is in %s's INBOX too", chatID, carol)
	}
	if flags, ok := inbox[plainID]; !ok {
		t.Errorf("the plain mail <%s> is not in %s's INBOX\n%s", plainID, carol, srv.tail())
	} else if hasChat(flags) {
		t.Errorf("the plain mail in INBOX has flags %v: $Chat on a message without Chat-Version", flags)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// sendPlain sends rcpt an ordinary mail, with no Chat-Version and a Message-ID that
// does not start with chat$, over SMTP port 25, and returns its Message-ID.
func sendPlain(t *testing.T, smtpAddr, rcpt string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, greet, err := testutil.DialSMTP(ctx, smtpAddr, testutil.SMTPDialOptions{})
	if err != nil {
		t.Fatalf("SMTP %s: %v %v", smtpAddr, greet, err)
	}
	defer cl.Close()
	if r, err := cl.Hello("peer.example.org"); err != nil || r.Code != 250 {
		t.Fatalf("EHLO: %v %v", r, err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	from := "newsletter@example.org"
	id := "plain-" + hex.EncodeToString(b) + "@example.org"
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: an ordinary mail\r\nDate: %s\r\nMessage-ID: <%s>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nNot a chat message: this one stays in INBOX.\r\n",
		from, rcpt, time.Now().Format(time.RFC1123Z), id)
	if r, err := cl.Send(from, []string{rcpt}, []byte(msg)); err != nil || r.Code != 250 {
		t.Fatalf("plain mail to %s over port 25: %v %v", rcpt, r, err)
	}
	_ = cl.Quit()
	return id
}

// dialIMAP logs in over IMAPS; the certificate is self-signed.
func dialIMAP(t *testing.T, addr, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test server
	})
	if err != nil {
		t.Fatalf("IMAPS %s: %v", addr, err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	return c
}

// mailbox examines box (read-only, so that no flag changes) and returns the flags of
// each message by its Message-ID (without angle brackets).
func mailbox(t *testing.T, c *imapclient.Client, box string) map[string][]imap.Flag {
	t.Helper()
	sel, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", box, err)
	}
	out := map[string][]imap.Flag{}
	if sel.NumMessages == 0 {
		return out
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH 1:* (UID FLAGS ENVELOPE) in %s: %v", box, err)
	}
	for _, m := range msgs {
		id := fmt.Sprintf("(UID %d, no Message-ID)", m.UID)
		if m.Envelope != nil && m.Envelope.MessageID != "" {
			id = m.Envelope.MessageID
		}
		out[id] = m.Flags
	}
	return out
}

// hasChat reports whether flags hold the $Chat keyword (keywords are case-insensitive).
func hasChat(flags []imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), "$Chat") })
}

// envValue is the value of name in env, a list of NAME=value.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
