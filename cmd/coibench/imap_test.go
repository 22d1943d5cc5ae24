package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// TestMailMessage checks the generated mailbox: messages of about the size asked for,
// that parse, in wire form, with the search words exactly where the benchmark counts them.
func TestMailMessage(t *testing.T) {
	const size = 4000
	var dec mime.WordDecoder
	for i := 1; i <= 300; i++ {
		msg := mailMessage(i, "user1@"+benchDomain, size)
		if n := len(msg); n < size*90/100 || n > size*110/100 {
			t.Errorf("message %d is %d bytes, want %d ± 10%%", i, n, size)
		}
		if !wireForm(msg) {
			t.Errorf("message %d: want CRLF line ends and no line starting with a dot", i)
		}
		m, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("message %d does not parse: %v", i, err)
		}
		subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
		if err != nil || subject == "" {
			t.Errorf("message %d: subject %q: %v", i, m.Header.Get("Subject"), err)
		}
		if _, err := m.Header.Date(); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		body, _ := io.ReadAll(m.Body)
		if got := strings.Contains(strings.ToLower(subject), subjectWord); got != hasSubjectWord(i) {
			t.Errorf("message %d: subject %q has %q: %v, want %v", i, subject, subjectWord, got, hasSubjectWord(i))
		}
		if got := bytes.Contains(body, []byte(bodyWord)); got != hasBodyWord(i) {
			t.Errorf("message %d: body has %q: %v, want %v", i, bodyWord, got, hasBodyWord(i))
		}
		if bytes.Contains(bytes.ToLower(msg), []byte(subjectWord)) != hasSubjectWord(i) || bytes.Contains(msg[:bytes.Index(msg, []byte("\r\n\r\n"))], []byte(bodyWord)) {
			t.Errorf("message %d: a search word where it does not belong", i)
		}
	}
	if a, b := mailMessage(7, "x@y", size), mailMessage(8, "x@y", size); bytes.Equal(a[200:], b[200:]) {
		t.Error("two messages alike")
	}
	if got := countUpTo(10000, hasSubjectWord); got != 100 {
		t.Errorf("subject word in %d of 10000 messages, want 100", got)
	}
	if got := countUpTo(10000, hasBodyWord); got != 200 {
		t.Errorf("body word in %d of 10000 messages, want 200", got)
	}
}

func wireForm(msg []byte) bool {
	return bytes.HasSuffix(msg, []byte("\r\n")) && !bytes.Contains(msg, []byte("\n.")) &&
		bytes.Count(msg, []byte("\n")) == bytes.Count(msg, []byte("\r\n"))
}

// TestIMAPConnCmd runs the raw client against a scripted server: response boundaries
// come from lines and literals, whatever a literal holds.
func TestIMAPConnCmd(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := &imapConn{conn: client, r: bufio.NewReaderSize(client, 64), timeout: 5 * time.Second}
	script := []struct{ want, reply string }{
		{"b1 SELECT \"INBOX\"\r\n", "* FLAGS (\\Seen)\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\nb1 OK [READ-WRITE] done\r\n"},
		{"b2 FETCH 1:* (FLAGS ENVELOPE)\r\n", "* 1 FETCH (ENVELOPE (NIL {19}\r\nb2 OK not the end\r\n NIL))\r\n* 2 FETCH (FLAGS ())\r\n" +
			"* 3 FETCH (ENVELOPE ({3}\r\nabc {0}\r\n))\r\nb2 OK done\r\n"},
		{"b3 UID SEARCH BODY x\r\n", "* SEARCH " + strings.Repeat("12345 ", 40) + "\r\nb3 OK done\r\n"},
		{"b4 NOOP\r\n", "b4 NO [ALERT] nope\r\n"},
	}
	go func() {
		r := bufio.NewReader(server)
		for _, s := range script {
			line, err := r.ReadString('\n')
			if err != nil || line != s.want {
				server.Close()
				return
			}
			if _, err := io.WriteString(server, s.reply); err != nil {
				return
			}
		}
	}()
	exists, rep, err := c.selectBox("INBOX")
	if err != nil || exists != 3 || rep.Untagged != 3 {
		t.Fatalf("SELECT: exists %d, %+v, %v", exists, rep, err)
	}
	rep, err = c.cmd(nil, "FETCH 1:* (FLAGS ENVELOPE)")
	if err != nil || rep.Untagged != 3 || rep.Status != "OK done" {
		t.Fatalf("FETCH: %+v, %v; want 3 responses and the last OK", rep, err)
	}
	found, _, err := c.searchCount("BODY x")
	if err != nil || found != 40 {
		t.Fatalf("SEARCH: %d found, %v; want 40", found, err)
	}
	if _, err := c.cmd(nil, "NOOP"); err == nil || !strings.Contains(err.Error(), "NOOP: NO [ALERT] nope") {
		t.Fatalf("NO answer: err = %v", err)
	}
}

func TestIMAPUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{args: []string{"imap", "-h"}, wantCode: 0, wantErr: "-conns"},
		{args: []string{"imap", "-size", "lots"}, wantCode: 2, wantErr: "-size must be a size"},
		{args: []string{"imap", "-fill", "carrier-pigeon"}, wantCode: 2, wantErr: "-fill one of"},
		{args: []string{"imap", "-addr", "127.0.0.1:993"}, wantCode: 2, wantErr: "needs -user and -password"},
		{args: []string{"imap", "-addr", "127.0.0.1:993", "-user", "u", "-password", "p"}, wantCode: 2, wantErr: "need -smtp"},
		{args: []string{"imap", "-addr", "127.0.0.1:993", "-user", "u", "-password", "p", "-latency", "0", "-fill", "store"}, wantCode: 2, wantErr: "needs -data-dir"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
			t.Errorf("coibench %v: code %d, stderr %q; want code %d and %q", tc.args, code, errb.String(), tc.wantCode, tc.wantErr)
		}
	}
}

// TestIMAPSmoke runs a tiny benchmark against a freshly built server and checks that
// every figure is there, with the right answers, in the JSON and in the table.
func TestIMAPSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts coibox")
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"imap", "-messages", "200", "-conns", "20", "-latency", "20", "-runs", "2", "-json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, errb.String())
	}
	var rep imapReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if rep.Messages != 200 || rep.Fill != "store" || rep.ServerPID == 0 {
		t.Fatalf("report: %d messages, fill %q, pid %d; want 200, store and a pid", rep.Messages, rep.Fill, rep.ServerPID)
	}
	for name, tm := range map[string]imapTiming{"select+fetch": rep.SelectFetch, "uid fetch": rep.UIDFetchFlags, "search subject": rep.SearchSubject, "search body": rep.SearchBody} {
		if len(tm.Runs) != 2 || tm.FirstMs <= 0 || tm.MedianMs <= 0 || tm.Bytes <= 0 || tm.Found != tm.Want {
			t.Errorf("%s: %+v; want 2 runs, times, bytes and the expected answer", name, tm)
		}
	}
	if rep.SelectFetch.Found != 200 || rep.SearchSubject.Found != 2 || rep.SearchBody.Found != 4 {
		t.Errorf("found %d envelopes, %d subjects, %d bodies; want 200, 2, 4", rep.SelectFetch.Found, rep.SearchSubject.Found, rep.SearchBody.Found)
	}
	if m := rep.Memory; m == nil || m.Conns != 20 || m.RSSBefore <= 0 || m.RSSAfter <= 0 {
		t.Errorf("memory per connection: %+v", m)
	}
	if l := rep.Idle; l == nil || l.Samples != 20 || l.MaxMs < l.P99Ms || l.P99Ms < l.MedianMs {
		t.Errorf("IDLE latency: %+v; want 20 samples, median ≤ p99 ≤ max", l)
	}
	if len(rep.Targets) != 7 {
		t.Errorf("%d targets, want 7: %+v", len(rep.Targets), rep.Targets)
	}

	var table bytes.Buffer
	if err := printIMAPTable(&table, &rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SELECT INBOX + FETCH 1:* (FLAGS ENVELOPE)", "UID FETCH 1:* (FLAGS)", "UID SEARCH SUBJECT", "UID SEARCH BODY",
		"200 ok", "KB per connection", "20 messages delivered", "p99", "DATA 250 to * EXISTS, median", "server RSS per idling connection"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
