package webpush

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPayloadVectors is §8.7's table, plus the fields the table leaves out.
func TestPayloadVectors(t *testing.T) {
	const prefix = `{"folder":"INBOX","uidvalidity":1,"uid":2`
	digits := func(n int) string { return strings.Repeat("1", n) }
	tests := []struct {
		name string
		msg  string
		want string // after the prefix
	}{
		{"nothing else", "", `}`},
		{"nothing but a blank line", "\r\n", `}`},
		{"subject, quoted-printable, utf-8 text/plain",
			"Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ny",
			`,"subject":"x","content-encoding":"quoted-printable","content":"y"}`},
		{"format=flowed", "Content-Type: text/plain; format=flowed\r\n\r\ny",
			`,"content-type":"text/plain; format=flowed","content":"y"}`},
		{"subject of 100", "Subject: " + digits(100) + "\r\n", `,"subject":"` + digits(100) + `"}`},
		{"subject of 101", "Subject: " + digits(101) + "\r\n", `,"subject":"` + digits(100) + `…"}`},
		{"99 digits and ä", "Subject: " + digits(99) + "ä\r\n", `,"subject":"` + digits(99) + `…"}`},
		{"99 digits and a quote", "Subject: " + digits(99) + "\"\r\n", `,"subject":"` + digits(99) + `…"}`},
		{"50 quotes and x", "Subject: " + strings.Repeat(`"`, 50) + "x\r\n", `,"subject":"` + strings.Repeat(`\"`, 50) + `…"}`},
		{"From with UTF-8", "From: Päivi Smith <päivi@example.com>\r\n", `,"from-email":"päivi@example.com","from-name":"Päivi Smith"}`},

		{"From lower-cased, RFC 2047 name", "From: =?ISO-8859-1?Q?P=E4ivi?= <Paivi@Example.COM>\r\n", `,"from-email":"paivi@example.com","from-name":"Päivi"}`},
		{"From without a name", "From: bob@example.org\r\n", `,"from-email":"bob@example.org"}`},
		{"first of several From addresses", "From: a@x.org, b@y.org\r\n", `,"from-email":"a@x.org"}`},
		{"From net/mail refuses", "From: Bob [work] <bob@example.org>\r\n", `,"from-email":"bob@example.org"}`},
		{"folded, encoded subject", "Subject: =?UTF-8?B?SGVsbG8=?=\r\n =?UTF-8?Q?_w=C3=B6rld?=\r\n", `,"subject":"Hello wörld"}`},
		{"empty subject", "Subject: \r\n", `}`},
		{"first Subject only", "Subject: one\r\nSubject: two\r\n", `,"subject":"one"}`},
		{"date in UTC", "Date: Tue, 01 Sep 2026 12:00:00 +0200\r\n", `,"date":"2026-09-01T10:00:00+00:00"}`},
		{"date unparsable", "Date: yesterday\r\n", `}`},
		{"msg-id raw", "Message-ID:  <3f2a@localhost>\r\n", `,"msg-id":"<3f2a@localhost>"}`},
		{"group from Message-ID", "Message-ID: <chat$group.Gr0up1d_xyz.9@ex.org>\r\n",
			`,"msg-id":"<chat$group.Gr0up1d_xyz.9@ex.org>","group-id":"Gr0up1d_xyz"}`},
		{"group from References", "Message-ID: <x@ex.org>\r\nReferences: <chat$group.Gr0up1d_xyz.9@ex.org> <y@ex.org>\r\n",
			`,"msg-id":"<x@ex.org>","group-id":"Gr0up1d_xyz"}`},
		{"group only from the first References id", "References: <y@ex.org> <chat$group.g.1@ex.org>\r\n", `}`},
		{"group over 100 bytes", "References: <chat$group." + digits(101) + ".1@x>\r\n", `}`},
		{"group empty", "References: <chat$group..1@x>\r\n", `}`},
		{"text/plain us-ascii", "Content-Type: text/plain; charset=US-ASCII\r\n\r\ny", `,"content":"y"}`},
		{"text/plain alone", "Content-Type: text/plain\r\n\r\ny", `,"content":"y"}`},
		{"text/plain latin-1", "Content-Type: text/plain; charset=iso-8859-1\r\n\r\ny",
			`,"content-type":"text/plain; charset=iso-8859-1","content":"y"}`},
		{"7bit left out", "Content-Transfer-Encoding: 7BIT\r\n\r\ny", `,"content":"y"}`},
		{"8bit left out", "Content-Transfer-Encoding: 8bit\r\n\r\ny", `,"content":"y"}`},
		{"body escaped", "\r\nline 1\r\nline \"2\"\t\x01", `,"content":"line 1\r\nline \"2\"\t\u0001"}`},
		{"LF-only message", "Subject: s\nContent-Type: text/html\n\n<p>", `,"subject":"s","content-type":"text/html","content":"<p>"}`},
		{"body not UTF-8: no content, no type", "Content-Type: text/html\r\n\r\n\xff", `}`},
		{"body with NUL", "Content-Type: text/html\r\n\r\na\x00b", `}`},
		{"body of 4097 bytes", "Content-Type: text/html\r\n\r\n" + strings.Repeat("a", 4097), `}`},
		{"content-type without body", "Content-Type: text/html\r\n", `}`},
		{"content-type too long to fit", "Content-Type: text/html;\r\n a=\"" + strings.Repeat("v", 5000) + "\"\r\n\r\ny", `}`},
		{"long subject folded over lines", "Subject: " + strings.Repeat("word ", 2000) + "\r\n " + "more\r\n", `,"subject":"` + strings.Repeat("word ", 20) + `…"}`},
		{"From after a long References", "References: <" + strings.Repeat("r", 9000) + ">\r\nFrom: a@b.c\r\n", `,"from-email":"a@b.c"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := buildPayload(Delivery{Mailbox: "INBOX", UIDValidity: 1, UID: 2, Message: []byte(tc.msg)})
			if !ok {
				t.Fatal("no payload")
			}
			if got, want := string(p.json), prefix+tc.want; got != want {
				t.Fatalf("payload\n%s\nwant\n%s", got, want)
			}
			if !json.Valid(p.json) {
				t.Fatalf("not JSON: %s", p.json)
			}
		})
	}
}

func TestPayloadLimits(t *testing.T) {
	// A body of 4096 bytes fits only while the JSON stays under 3993 bytes.
	fits := strings.Repeat("a", 3993-len(`{"folder":"INBOX","uidvalidity":1,"uid":2,"content":""}`)-1)
	p, _ := buildPayload(Delivery{Mailbox: "INBOX", UIDValidity: 1, UID: 2, Message: []byte("\r\n" + fits)})
	if len(p.json) != 3992 || !strings.Contains(string(p.json), `"content"`) {
		t.Fatalf("a 3992-byte payload lost its content (%d bytes)", len(p.json))
	}
	p, _ = buildPayload(Delivery{Mailbox: "INBOX", UIDValidity: 1, UID: 2, Message: []byte("Content-Type: text/html\r\n\r\n" + fits + "a")})
	if strings.Contains(string(p.json), `"content`) {
		t.Fatalf("a 3993-byte payload kept its content: %s", p.json[:80])
	}
	// Escaping counts: 2000 line breaks are 4000 bytes of JSON.
	p, _ = buildPayload(Delivery{Mailbox: "INBOX", Message: []byte("\r\n" + strings.Repeat("\n", 2000))})
	if strings.Contains(string(p.json), `"content"`) {
		t.Fatal("escaped content over the budget was kept")
	}

	for _, tc := range []struct {
		name string
		d    Delivery
	}{
		{"MDN", Delivery{Mailbox: "INBOX", Message: []byte("Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n")}},
		{"MDN, broken parameters", Delivery{Mailbox: "INBOX", Message: []byte("Content-Type: Multipart/Report; ;;\r\n\r\n")}},
		{"folder over 1000 bytes", Delivery{Mailbox: strings.Repeat("f", 1001)}},
	} {
		if _, ok := buildPayload(tc.d); ok {
			t.Errorf("%s: pushed", tc.name)
		}
	}
	// An encrypted MDN is multipart/encrypted, and is pushed (§8.6).
	if _, ok := buildPayload(Delivery{Mailbox: "INBOX", Message: []byte("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"\r\n\r\n")}); !ok {
		t.Error("encrypted message not pushed")
	}
	if _, ok := buildPayload(Delivery{Mailbox: strings.Repeat("f", 1000)}); !ok {
		t.Error("folder of 1000 bytes not pushed")
	}
}

func TestWants(t *testing.T) {
	sub := func(msgtype string, exclude ...string) *Subscription {
		return &Subscription{MsgType: msgtype, ExcludeFrom: exclude}
	}
	for _, tc := range []struct {
		sub  *Subscription
		chat bool
		from string
		want bool
	}{
		{sub("chat"), true, "a@x", true},
		{sub("chat"), false, "a@x", false},
		{sub("mail"), true, "a@x", false},
		{sub("mail"), false, "a@x", true},
		{sub("email"), true, "a@x", false},
		{sub("email"), false, "a@x", true},
		{sub("all"), true, "a@x", true},
		{sub("any"), false, "a@x", true},
		{sub("all", "A@X"), true, "a@x", false},
		{sub("all", "b@x"), true, "a@x", true},
		{sub("all", "Ä@x"), true, "ä@x", true}, // ASCII case-insensitive only: Ä is not ä
		{sub("all", "a@x"), true, "", true},
	} {
		if got := wants(tc.sub, tc.chat, tc.from); got != tc.want {
			t.Errorf("wants(%s %v, chat %v, from %q) = %v", tc.sub.MsgType, tc.sub.ExcludeFrom, tc.chat, tc.from, got)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{strings.Repeat("a", 100), `"` + strings.Repeat("a", 100) + `"`},
		{strings.Repeat("a", 98) + "\x01", `"` + strings.Repeat("a", 98) + `…"`}, // \u0001 does not fit
		{strings.Repeat("a", 94) + "\x01", `"` + strings.Repeat("a", 94) + `\u0001"`},
		{strings.Repeat("a", 97) + "€x", `"` + strings.Repeat("a", 97) + `€…"`},
		{strings.Repeat("a", 98) + "€", `"` + strings.Repeat("a", 98) + `…"`},
		{"\xff", "\"\uFFFD\""},
	} {
		if got := string(appendTruncated(nil, tc.in, 100)); got != tc.want {
			t.Errorf("truncate(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
