package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/pion/turn/v4"

	"github.com/coibox/coibox/internal/testutil"
)

// The chatmail acceptance scenarios (spec/chatmail.md §13) that one coibox host can
// show with real clients: go-imap's client and raw SMTP, against the built binary.
// Numbers in the test names are the spec's scenario numbers.

const chatDomain = "chat.e2e.test"

// encryptedFixture is testutil.EncryptedMessage.
func encryptedFixture(t *testing.T, from, to, subject string) []byte {
	return testutil.EncryptedMessage(t, from, to, subject)
}

// startChat starts a server with the chatmail domain. The resource guard is off: a
// shared test machine's load average says nothing about the server under test.
// The embedded TURN server is off (it would listen on every address): the TURN test
// turns it on, on loopback.
func startChat(t *testing.T, settings ...string) *server {
	t.Helper()
	return startChatConfig(t, "\n[chat]\nturn_listen = \"\"\n", settings...)
}

func startChatConfig(t *testing.T, config string, settings ...string) *server {
	t.Helper()
	return startServer(t, options{users: []string{"olga"}, chatmail: chatDomain, config: config,
		chatSettings: append([]string{"resource_guard=off"}, settings...)})
}

// imapLogin logs in over IMAPS and returns the client or the LOGIN error.
func imapLogin(t *testing.T, s *server, user, pass string) (*imapclient.Client, error) {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// submit logs in on the submission port (STARTTLS) and returns the client.
func submit(t *testing.T, s *server, user, pass string) *testutil.SMTPClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	c, _, err := testutil.DialSMTP(ctx, s.addr.Submission, testutil.SMTPDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if r, err := c.Hello("client.e2e.test"); err != nil || r.Code != 250 {
		t.Fatalf("EHLO: %v %v", r, err)
	}
	if r, err := c.StartTLS(clientTLS()); err != nil || r.Code != 220 {
		t.Fatalf("STARTTLS: %v %v", r, err)
	}
	if r, err := c.Hello("client.e2e.test"); err != nil || r.Code != 250 {
		t.Fatalf("EHLO: %v %v", r, err)
	}
	if r, err := c.AuthPlain(user, pass); err != nil || r.Code != 235 {
		t.Fatalf("AUTH %s: %v %v", user, r, err)
	}
	return c
}

// TestChatmail01Capabilities: XCHATMAIL, XDELTAPUSH and METADATA after login on a
// chatmail domain, none of the chat ones before login or on an ordinary domain (26).
func TestChatmail01Capabilities(t *testing.T) {
	s := startChat(t)
	c, err := imapLogin(t, s, "capscheck@"+chatDomain, "long-enough-password")
	if err != nil {
		t.Fatalf("first login: %v", err)
	}
	caps := c.Caps()
	for _, want := range []imap.Cap{"XCHATMAIL", "XDELTAPUSH", "METADATA"} {
		if !caps.Has(want) {
			t.Errorf("chatmail account lacks %s: %v", want, caps)
		}
	}
	o, err := imapLogin(t, s, "olga@"+domain, s.passwords["olga@"+domain])
	if err != nil {
		t.Fatal(err)
	}
	for _, no := range []imap.Cap{"XCHATMAIL", "XDELTAPUSH"} {
		if o.Caps().Has(no) {
			t.Errorf("ordinary account has %s: %v", no, o.Caps())
		}
	}
	pre, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	if pc, err := pre.Capability().Wait(); err != nil || pc.Has("XCHATMAIL") || pc.Has("XDELTAPUSH") {
		t.Errorf("capabilities before login: %v %v", pc, err)
	}
}

// TestChatmail02FirstLogin: a new 9-character name makes the account; it then logs
// in again, a wrong password fails, and names or passwords the rules refuse make
// nothing (2, 3).
func TestChatmail02FirstLogin(t *testing.T) {
	s := startChat(t)
	addr := "abcde1234@" + chatDomain
	if _, err := imapLogin(t, s, addr, "first-password"); err != nil {
		t.Fatalf("first login: %v", err)
	}
	if _, err := imapLogin(t, s, strings.ToUpper(addr), "first-password"); err != nil {
		t.Errorf("second login (upper case): %v", err)
	}
	if _, err := imapLogin(t, s, addr, "wrong-password"); err == nil || !strings.Contains(err.Error(), "Authentication failed.") {
		t.Errorf("wrong password: %v", err)
	}
	for _, tc := range []struct{ user, pass, why string }{
		{"short1234@" + chatDomain, "pw5ch", "5-character password"},
		{"toolongname1@" + chatDomain, "long-enough-password", "12-character name"},
		{"bad!name1@" + chatDomain, "long-enough-password", "character outside the set"},
		{"postmaster@" + chatDomain, "long-enough-password", "reserved name"},
		{"newperson@" + domain, "long-enough-password", "ordinary domain"},
	} {
		if _, err := imapLogin(t, s, tc.user, tc.pass); err == nil {
			t.Errorf("%s: login succeeded", tc.why)
		}
	}
	out := s.mustAdmin(t, "", "account", "list").Stdout
	if !strings.Contains(out, addr) {
		t.Errorf("account list lacks %s:\n%s", addr, out)
	}
	// §10: a chatmail account's quota is the domain's max_mailbox_size; the admin
	// may change it, for ordinary accounts too.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, addr) && !strings.Contains(line, "500.0 MiB") {
			t.Errorf("new chatmail account's quota: %q, want 500.0 MiB", line)
		}
	}
	if r := s.mustAdmin(t, "", "account", "set", "olga@"+domain, "quota=2GiB", "enforce_e2ee_incoming=on"); !strings.Contains(r.Stdout, "quota=2.0 GiB messages=unlimited enforce_e2ee_incoming=on coi_filing=off") {
		t.Errorf("account set printed %q", r.Stdout)
	}
	if r := s.admin(t, "", "account", "set", "olga@"+domain, "quota=lots"); r.Code == 0 || !strings.Contains(r.Stderr, "not a size") {
		t.Errorf("account set quota=lots: %d %q", r.Code, r.Stderr)
	}
	for _, absent := range []string{"short1234@", "toolongname1@", "bad!name1@", "postmaster@", "newperson@"} {
		if strings.Contains(out, absent) {
			t.Errorf("account list has %s:\n%s", absent, out)
		}
	}
}

// TestChatmail04ParallelFirstLogins: two new accounts may share a password, and ten
// simultaneous IMAP and SMTP first logins of one new account all succeed (4).
func TestChatmail04ParallelFirstLogins(t *testing.T) {
	s := startChat(t)
	const pw = "shared-password-1"
	for _, u := range []string{"sharepw01", "sharepw02"} {
		if _, err := imapLogin(t, s, u+"@"+chatDomain, pw); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	addr := "parallel1@" + chatDomain
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			if i%2 == 0 {
				c, err := imapclient.DialTLS(s.addr.IMAPS, &imapclient.Options{TLSConfig: clientTLS()})
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				if err := c.Login(addr, pw).Wait(); err != nil {
					errs <- fmt.Errorf("IMAP login %d: %w", i, err)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, _, err := testutil.DialSMTP(ctx, s.addr.Submissions, testutil.SMTPDialOptions{TLS: clientTLS()})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := c.Hello("client.e2e.test"); err != nil {
				errs <- err
				return
			}
			if r, err := c.AuthPlain(addr, pw); err != nil || r.Code != 235 {
				errs <- fmt.Errorf("SMTP login %d: %v %v", i, r, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := strings.Count(s.mustAdmin(t, "", "account", "list").Stdout, addr); n != 1 {
		t.Errorf("account list names %s %d times", addr, n)
	}
}

// TestChatmail09To14Submission: the submission rules of §6, §7: MAIL FROM not owned
// (553 per recipient), From not MAIL FROM (500), cleartext (523), the Subject
// replaced and identifying fields and the client address gone, and the send rate.
func TestChatmail09To14Submission(t *testing.T) {
	s := startChat(t, "send_rate=60/min,burst=10")
	alice, bob := "alice0001@"+chatDomain, "bob000001@"+chatDomain
	for _, u := range []string{alice, bob} {
		if _, err := imapLogin(t, s, u, "pass-"+u); err != nil {
			t.Fatal(err)
		}
	}
	c := submit(t, s, alice, "pass-"+alice)
	msg := encryptedFixture(t, alice, bob, "Unencrypted subject")

	// 10: MAIL FROM another user: 553 at each RCPT.
	if r, err := c.Cmd("MAIL FROM:<%s>", bob); err != nil || r.Code != 250 {
		t.Fatalf("MAIL FROM: %v %v", r, err)
	}
	for range 2 {
		r, err := c.Cmd("RCPT TO:<%s>", bob)
		if err != nil || r.Code != 553 || !strings.Contains(r.Text(), "not owned by user "+alice) {
			t.Errorf("RCPT after a foreign MAIL FROM: %v %v", r, err)
		}
	}
	if r, err := c.Cmd("RSET"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}

	// 9: From another user, encrypted: refused with 500.
	r, err := c.Send(alice, []string{bob}, encryptedFixture(t, bob, bob, "[...]"))
	if err != nil || r.Code != 500 || r.Text() != "Invalid FROM <"+bob+"> for <"+alice+">" {
		t.Errorf("From another user: %v %v", r, err)
	}

	// §6.2: cleartext refused with the exact 523 text.
	r, err = c.Send(alice, []string{bob}, newMessage(alice, bob, "clear-1@e2e", 500))
	if err != nil || r.String() != "523 Encryption Needed: Invalid Unencrypted Mail" {
		t.Errorf("cleartext submission: %q %v", r.String(), err)
	}

	// 13, 22: the recipient sees Subject: [...], no X-Mailer, no client address.
	if r, err := c.Send(alice, []string{bob}, msg); err != nil || r.Code != 250 {
		t.Fatalf("encrypted submission: %v %v", r, err)
	}
	got := s.inbox(t, bob)
	if len(got) != 1 {
		t.Fatalf("bob's INBOX has %d messages, want 1", len(got))
	}
	if subj := got[0].header.Get("Subject"); subj != "[...]" {
		t.Errorf("delivered Subject %q, want [...]", subj)
	}
	for _, f := range []string{"X-Mailer", "Received", "Authentication-Results", "DKIM-Signature"} {
		if v := got[0].header.Get(f); v != "" {
			t.Errorf("delivered message has %s: %q", f, v)
		}
	}
	if bytes.Contains(got[0].body, []byte("127.0.0.1")) {
		t.Errorf("delivered message names the client address:\n%s", got[0].body[:min(len(got[0].body), 600)])
	}

	// 14: the burst allows 10 transactions in all (one used above, failed ones too
	// count: each MAIL with an accepted RCPT is a transaction); later ones get 450.
	limited := false
	for i := range 15 {
		r, err := c.Send(alice, []string{bob}, msg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == 450 {
			if !strings.Contains(r.Text(), "4.7.1: Too much mail from "+alice) {
				t.Errorf("rate limit reply %q", r.String())
			}
			if i < 5 {
				t.Errorf("rate limited after only %d more messages", i)
			}
			limited = true
			break
		}
		if r.Code != 250 {
			t.Fatalf("message %d: %v", i, r)
		}
	}
	if !limited {
		t.Error("15 messages at once were not rate limited")
	}
}

// TestChatmail23Incoming: port 25 needs STARTTLS for chatmail recipients (530 at
// RCPT), cleartext mail to a chatmail account is refused with 523, and an
// encrypted message without a DKIM signature with 554 (11, 23); an ordinary
// account still takes cleartext (26).
func TestChatmail23Incoming(t *testing.T) {
	s := startChat(t)
	carol := "carol0001@" + chatDomain
	if _, err := imapLogin(t, s, carol, "pass-carol-1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// From 127.0.0.9, a peer like any other (127.0.0.1 is the host itself).
	c, _, err := testutil.DialSMTP(ctx, s.addr.SMTP, testutil.SMTPDialOptions{LocalIP: "127.0.0.9"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Hello("peer.example.org"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if r, err := c.Cmd("MAIL FROM:<x@example.org>"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if r, err := c.Cmd("RCPT TO:<%s>", carol); err != nil || r.String() != "530 5.7.0 Must issue a STARTTLS command first" {
		t.Errorf("RCPT without STARTTLS: %q %v", r.String(), err)
	}
	if r, err := c.Cmd("RSET"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if r, err := c.StartTLS(clientTLS()); err != nil || r.Code != 220 {
		t.Fatal(r, err)
	}
	if r, err := c.Hello("peer.example.org"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	r, err := c.Send("x@example.org", []string{carol}, newMessage("x@example.org", carol, "plain-23@example.org", 400))
	if err != nil || r.String() != "523 Encryption Needed: Invalid Unencrypted Mail" {
		t.Errorf("cleartext to a chatmail account: %q %v", r.String(), err)
	}
	r, err = c.Send("fake@example.org", []string{carol}, encryptedFixture(t, "fake@example.org", carol, "[...]"))
	if err != nil || r.String() != "554 5.7.1 No DKIM signature found" {
		t.Errorf("encrypted without DKIM: %q %v", r.String(), err)
	}
	olga := "olga@" + domain
	if r, err := c.Send("x@example.org", []string{olga}, newMessage("x@example.org", olga, "plain-26@example.org", 400)); err != nil || r.Code != 250 {
		t.Errorf("cleartext to an ordinary account: %v %v", r, err)
	}
}

// TestChatmail16Metadata: the METADATA answers Delta Chat reads (§2.3).
func TestChatmail16Metadata(t *testing.T) {
	s := startChatConfig(t, "\n[chat]\nturn_listen = \"\"\nappversions = '{\"android\":\"2.58.0\"}'\n", "admin_contact=admin@"+chatDomain, "iroh_relay=https://iroh.example.org/")
	c, err := imapLogin(t, s, "meta00001@"+chatDomain, "pass-meta-1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.GetMetadata("", []string{"/shared/comment", "/shared/admin", "/shared/vendor/deltachat/irohrelay", "/shared/vendor/deltachat/maxsmtprecipients", "/shared/vendor/deltachat/appversions"}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/shared/admin":                              "mailto:admin@" + chatDomain,
		"/shared/vendor/deltachat/irohrelay":         "https://iroh.example.org/",
		"/shared/vendor/deltachat/maxsmtprecipients": "1000",
		"/shared/vendor/deltachat/appversions":       `{"android":"2.58.0"}`,
	}
	for k, v := range want {
		if got := data.Entries[k]; got == nil || string(*got) != v {
			t.Errorf("%s = %v, want %q", k, got, v)
		}
	}
	if v := data.Entries["/shared/comment"]; v != nil {
		t.Errorf("/shared/comment = %q, want NIL", *v)
	}
}

// TestChatmail06New: POST /new hands out credentials on the chatmail domain that a
// first login then claims; GET redirects to the app; the legacy path answers the
// same; other hosts and closed registration are refused (6, and §4).
func TestChatmail06New(t *testing.T) {
	s := startChat(t)
	post := func(path, host string) (int, map[string]string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method(path), "http://"+s.addr.HTTP+strings.TrimPrefix(path, "GET "), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body, resp.Header
	}
	code, creds, h := post("/new", chatDomain)
	if code != 200 || !strings.HasSuffix(creds["email"], "@"+chatDomain) || len(creds["password"]) <= 9 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /new: %d %v %v", code, creds, h)
	}
	if !strings.HasPrefix(creds["dclogin_url"], "dclogin:"+creds["email"]+"?p=") {
		t.Errorf("self-signed server's /new lacks dclogin_url: %v", creds)
	}
	if _, err := imapLogin(t, s, creds["email"], creds["password"]); err != nil {
		t.Errorf("first login with /new's credentials: %v", err)
	}
	if code, legacy, _ := post("/cgi-bin/newemail.py", chatDomain); code != 200 || legacy["email"] == creds["email"] {
		t.Errorf("legacy path: %d %v", code, legacy)
	}
	if code, _, h := post("GET /new", chatDomain); code != 301 || h.Get("Location") != "dcaccount:https://"+chatDomain+"/new" {
		t.Errorf("GET /new: %d %v", code, h)
	}
	if code, _, _ := post("/new", domain); code != 404 {
		t.Errorf("POST /new on an ordinary domain: %d, want 404", code)
	}
	s.mustAdmin(t, "", "domain", "set", chatDomain, "registration=closed")
	if code, body, _ := post("/new", chatDomain); code != 403 || body["reason"] != "registration is closed" {
		t.Errorf("closed registration: %d %v", code, body)
	}
	if _, err := imapLogin(t, s, "closedreg@"+chatDomain, "long-enough-password"); err == nil {
		t.Error("first login succeeded with registration closed")
	}
}

func method(path string) string {
	if strings.HasPrefix(path, "GET ") {
		return http.MethodGet
	}
	return http.MethodPost
}

// TestChatmailTURN (f): the turn METADATA value Delta Chat reads gives credentials
// that pion's TURN client allocates a relay with, and the relay carries a packet.
func TestChatmailTURN(t *testing.T) {
	port := testutil.FreePorts(t, 1)[0]
	s := startChatConfig(t, fmt.Sprintf("\n[chat]\nturn_listen = \"127.0.0.1:%d\"\nturn_public_ip = \"127.0.0.1\"\nturn_allow_loopback = true\n", port))
	c, err := imapLogin(t, s, "caller001@"+chatDomain, "pass-caller-1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.GetMetadata("", []string{"/shared/vendor/deltachat/turn"}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	v := data.Entries["/shared/vendor/deltachat/turn"]
	if v == nil {
		t.Fatal("no turn METADATA value")
	}
	parts := strings.SplitN(string(*v), ":", 4)
	if len(parts) != 4 || parts[0] != "localhost" || parts[1] != strconv.Itoa(port) {
		t.Fatalf("turn value %q, want localhost:%d:EXPIRY:PASSWORD", *v, port)
	}
	if exp, err := strconv.ParseInt(parts[2], 10, 64); err != nil || time.Until(time.Unix(exp, 0)) < 4*24*time.Hour {
		t.Errorf("turn credentials expire at %s, want days from now", parts[2])
	}

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	server := fmt.Sprintf("127.0.0.1:%d", port)
	cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Username: parts[2], Password: parts[3], Conn: pc, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := cl.Allocate()
	if err != nil {
		t.Fatalf("allocate with the METADATA credentials: %v", err)
	}
	defer relay.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("ring ring"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ring ring" || from.String() != relay.LocalAddr().String() {
		t.Errorf("peer got %q from %v (%v), want \"ring ring\" from the relay %v", buf[:n], from, err, relay.LocalAddr())
	}

	// Wrong password: no allocation.
	pc2, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close()
	bad, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Username: parts[2], Password: "wrong", Conn: pc2, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Listen(); err != nil {
		t.Fatal(err)
	}
	if r, err := bad.Allocate(); err == nil {
		r.Close()
		t.Error("allocation with a wrong password succeeded")
	}
}

// TestChatmail16Push (16, 25): device tokens are added, never replaced, over a
// SETMETADATA ended by a bare LF; mail from another user posts the raw token to the
// notifier, retried after a 500 (8 s later), and a 410 removes the token.
func TestChatmail16Push(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	var times []time.Time
	answers := []int{500, 200, 410}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		posts = append(posts, r.Method+" "+string(b))
		times = append(times, time.Now())
		code := 200
		if len(answers) > 0 {
			code, answers = answers[0], answers[1:]
		}
		w.WriteHeader(code)
	}))
	defer sink.Close()
	s := startChatConfig(t, fmt.Sprintf("\n[chat]\nturn_listen = \"\"\npush_notify_url = %q\n", sink.URL))
	dana, erin := "dana00001@"+chatDomain, "erin00001@"+chatDomain
	if _, err := imapLogin(t, s, erin, "pass-erin-1"); err != nil {
		t.Fatal(err)
	}

	// The relay's own test, byte for byte: bare LF, a space before ")".
	conn, err := tls.Dial("tcp", s.addr.IMAPS, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	line := func() string {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	send := func(s string) {
		if _, err := conn.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	line() // greeting
	send("a00 LOGIN " + dana + " pass-dana-1\n")
	if l := line(); !strings.HasPrefix(l, "a00 OK") {
		t.Fatalf("LOGIN: %s", l)
	}
	for _, tok := range []string{"1111", "2222"} {
		send("a01 SETMETADATA INBOX (/private/devicetoken \"" + tok + "\" )\n")
		if l := line(); l != "a01 OK Setmetadata completed." {
			t.Fatalf("SETMETADATA %s: %s", tok, l)
		}
	}
	send("a02 GETMETADATA INBOX /private/devicetoken\n")
	if l := line(); l != `* METADATA INBOX (/private/devicetoken {9}` {
		t.Fatalf("GETMETADATA: %s", l)
	}
	if l := line(); l != "1111 2222)" {
		t.Fatalf("GETMETADATA value: %q, want both tokens", l)
	}
	if l := line(); l != "a02 OK Getmetadata completed." {
		t.Fatalf("GETMETADATA end: %s", l)
	}
	send("a03 SETMETADATA INBOX (/private/devicetoken \"" + strings.Repeat("x", 4097) + "\")\n")
	if l := line(); !strings.HasPrefix(l, "a03 NO [METADATA MAXSIZE 4096]") {
		t.Errorf("4097-byte token: %s", l)
	}
	send("a04 LOGOUT\n")

	// Mail from erin wakes both of dana's devices; her own mail would not.
	c := submit(t, s, erin, "pass-erin-1")
	if r, err := c.Send(erin, []string{dana}, encryptedFixture(t, erin, dana, "[...]")); err != nil || r.Code != 250 {
		t.Fatalf("send: %v %v", r, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(posts)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) < 3 {
		t.Fatalf("notifier got %d posts in 30 s: %q", len(posts), posts)
	}
	got := map[string]int{}
	for _, p := range posts[:3] {
		got[p]++
	}
	// Two tokens, one refused with 500 and retried: three posts, bodies the raw tokens.
	if got["POST 1111"]+got["POST 2222"] != 3 || got["POST 1111"] == 0 || got["POST 2222"] == 0 {
		t.Errorf("posts %q, want the raw tokens 1111 and 2222, one of them twice", posts)
	}
	if d := times[2].Sub(times[0]); d < 7*time.Second {
		t.Errorf("the retry after a 500 came %v after the first post, want about 8 s", d)
	}
	// The third answer was 410: that token is gone.
	gone := strings.TrimPrefix(posts[2], "POST ")
	cl, err := imapLogin(t, s, dana, "pass-dana-1")
	if err != nil {
		t.Fatal(err)
	}
	md, err := cl.GetMetadata("INBOX", []string{"/private/devicetoken"}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if v := md.Entries["/private/devicetoken"]; v == nil || strings.Contains(string(*v), gone) || len(*v) != 4 {
		t.Errorf("tokens after a 410 for %s: %v", gone, v)
	}
}

// TestChatmailALPN443 (g): with only port 443 reachable, IMAP (ALPN "imap") and
// submission (ALPN "smtp") work through it beside HTTPS.
func TestChatmailALPN443(t *testing.T) {
	s := startServer(t, options{users: []string{"olga"}, chatmail: chatDomain, https: true,
		config: "\n[chat]\nturn_listen = \"\"\n", chatSettings: []string{"resource_guard=off"}})
	user := "alpn00001@" + chatDomain
	tlsFor := func(proto string) *tls.Config {
		c := clientTLS()
		c.NextProtos = []string{proto}
		return c
	}
	ic, err := imapclient.DialTLS(s.https, &imapclient.Options{TLSConfig: tlsFor("imap")})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(user, "pass-alpn-01").Wait(); err != nil {
		t.Fatalf("IMAP LOGIN over 443: %v", err)
	}
	if !ic.Caps().Has("XCHATMAIL") {
		t.Errorf("IMAP over 443 is not the chat-aware IMAP server: %v", ic.Caps())
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sc, greeting, err := testutil.DialSMTP(ctx, s.https, testutil.SMTPDialOptions{TLS: tlsFor("smtp")})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if greeting.Code != 220 {
		t.Fatalf("SMTP greeting over 443: %v", greeting)
	}
	if r, err := sc.Hello("client.e2e.test"); err != nil || r.Code != 250 {
		t.Fatal(r, err)
	}
	if r, err := sc.AuthPlain(user, "pass-alpn-01"); err != nil || r.Code != 235 {
		t.Fatalf("AUTH over 443: %v %v", r, err)
	}
	if r, err := sc.Send(user, []string{user}, encryptedFixture(t, user, user, "[...]")); err != nil || r.Code != 250 {
		t.Errorf("submission over 443: %v %v", r, err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	resp, err := hc.Get("https://" + s.https + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HTTPS over 443: %d", resp.StatusCode)
	}
}

// TestChatmailCreationLimit: first logins make at most chat.accounts_per_network
// accounts per hour from one client network; logins of existing accounts go on.
func TestChatmailCreationLimit(t *testing.T) {
	s := startChatConfig(t, "\n[chat]\nturn_listen = \"\"\naccounts_per_network = 3\n")
	for i := range 3 {
		if _, err := imapLogin(t, s, fmt.Sprintf("limit%04d@%s", i, chatDomain), "pass-limit-1"); err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
	}
	if _, err := imapLogin(t, s, "limit0003@"+chatDomain, "pass-limit-1"); err == nil {
		t.Error("a fourth account from one network was made")
	}
	if _, err := imapLogin(t, s, "limit0000@"+chatDomain, "pass-limit-1"); err != nil {
		t.Errorf("login of an existing account after the limit: %v", err)
	}
}

// TestChatmail18OverQuota: a chatmail mailbox full of recent mail refuses more with
// 552 5.2.2 (at RCPT once it is known to be full), which the sender sees; the
// immediate trim never deletes mail under 24 hours old to make room.
func TestChatmail18OverQuota(t *testing.T) {
	s := startChat(t)
	alice, bob := "alice0018@"+chatDomain, "bob000018@"+chatDomain
	for _, u := range []string{alice, bob} {
		if _, err := imapLogin(t, s, u, "pass-"+u); err != nil {
			t.Fatal(err)
		}
	}
	s.mustAdmin(t, "", "account", "set", bob, "quota=6KiB")
	c := submit(t, s, alice, "pass-"+alice)
	msg := encryptedFixture(t, alice, bob, "[...]")
	var last testutil.SMTPReply
	for range 4 {
		r, err := c.Send(alice, []string{bob}, msg)
		if err != nil {
			t.Fatal(err)
		}
		last = r
		if r.Code != 250 {
			break
		}
	}
	if last.String() != "552 5.2.2 <"+bob+">: mailbox full" {
		t.Errorf("send to a full mailbox: %q", last.String())
	}
	if n := len(s.inbox(t, bob)); n == 0 {
		t.Error("the recent mail was trimmed away")
	}
}
