package dsn

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/internal/ascii"
)

var (
	t0     = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	header = []byte("From: a@a.test\r\nTo: b@b.test\r\nSubject: hi\r\nMessage-ID: <1@a.test>\r\n")
)

func TestBuildParse(t *testing.T) {
	tests := []struct {
		name       string
		rcpts      []Recipient
		header     []byte
		wantType   string
		wantText   []string
		wantGlobal bool
	}{
		{
			name: "failed",
			rcpts: []Recipient{{
				FinalRecipient: "b@b.test", Action: Failed, Status: "5.1.1", RemoteMTA: "mx.b.test",
				DiagnosticCode: "550 5.1.1 <b@b.test>: no such user", LastAttempt: t0,
			}},
			header:   header,
			wantType: "message/delivery-status",
			wantText: []string{"could not be delivered", "<b@b.test> (server mx.b.test):", "550 5.1.1 <b@b.test>: no such user"},
		},
		{
			name: "delayed",
			rcpts: []Recipient{{
				FinalRecipient: "b@b.test", Action: Delayed, Status: "4.4.1", DiagnosticCode: "421 4.4.1 connection refused",
				LastAttempt: t0, WillRetryUntil: t0.Add(120 * time.Hour),
			}},
			header:   header,
			wantType: "message/delivery-status",
			wantText: []string{"not been delivered yet", "retried until 2026-11-30 12:00 UTC"},
		},
		{
			name: "mixed, multi-line reply",
			rcpts: []Recipient{
				{FinalRecipient: "b@b.test", Action: Failed, Status: "5.7.1", DiagnosticCode: "550-5.7.1 first line\r\n550 5.7.1 second line"},
				{FinalRecipient: "c@b.test", Action: Delayed, Status: "4.2.2", DiagnosticCode: "452 4.2.2 mailbox full"},
			},
			header:   header,
			wantType: "message/delivery-status",
			wantText: []string{"could not be delivered", "not been delivered yet", "<c@b.test>"},
		},
		{
			name: "internationalized",
			rcpts: []Recipient{{
				FinalRecipient: "jörg@b.test", Action: Failed, Status: "5.1.1", DiagnosticCode: "550 5.1.1 unbekannt: jörg",
			}},
			header:     []byte("From: a@a.test\r\nSubject: grüße\r\n"),
			wantType:   "message/global-delivery-status",
			wantText:   []string{"<jörg@b.test>"},
			wantGlobal: true,
		},
		{
			name:     "no original header",
			rcpts:    []Recipient{{FinalRecipient: "b@b.test", Action: Failed, Status: "5.0.0"}},
			wantType: "message/delivery-status",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{
				ReportingMTA: "mx.a.test", To: "a@a.test", Date: t0, ArrivalDate: t0.Add(-time.Hour),
				Recipients: tc.rcpts, OriginalHeader: tc.header,
			}
			msg, err := Build(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(msg), "\r\n") {
				if len(l) > 998 || strings.Contains(l, "\n") {
					t.Fatalf("bad line %q", l)
				}
			}
			if !bytes.Contains(msg, []byte("Content-Type: "+tc.wantType)) {
				t.Errorf("want part %s in\n%s", tc.wantType, msg)
			}
			for _, want := range []string{"From: Mail Delivery System <MAILER-DAEMON@mx.a.test>", "Auto-Submitted: auto-replied", "To: <a@a.test>"} {
				if !bytes.Contains(msg, []byte(want)) {
					t.Errorf("missing %q in\n%s", want, msg)
				}
			}
			rep, err := Parse(msg)
			if err != nil {
				t.Fatalf("parse: %v\n%s", err, msg)
			}
			if rep.ReportingMTA != "mx.a.test" || !rep.ArrivalDate.Equal(t0.Add(-time.Hour)) {
				t.Errorf("per-message fields: %q %v", rep.ReportingMTA, rep.ArrivalDate)
			}
			if len(rep.Recipients) != len(tc.rcpts) {
				t.Fatalf("recipients: got %d, want %d", len(rep.Recipients), len(tc.rcpts))
			}
			for i, want := range tc.rcpts {
				got := rep.Recipients[i]
				want.DiagnosticCode = clean(want.DiagnosticCode, true)
				if !got.LastAttempt.Equal(want.LastAttempt) || !got.WillRetryUntil.Equal(want.WillRetryUntil) {
					t.Errorf("recipient %d dates: %v %v", i, got.LastAttempt, got.WillRetryUntil)
				}
				got.LastAttempt, got.WillRetryUntil, want.LastAttempt, want.WillRetryUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if got != want {
					t.Errorf("recipient %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
			for _, w := range tc.wantText {
				if !strings.Contains(rep.Text, w) {
					t.Errorf("human text lacks %q:\n%s", w, rep.Text)
				}
			}
			if !bytes.Equal(rep.OriginalHeader, tc.header) {
				t.Errorf("original header: %q", rep.OriginalHeader)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	for _, m := range []*Message{
		{ReportingMTA: "a", To: "b@c"},
		{To: "b@c", Recipients: []Recipient{{FinalRecipient: "x@y", Action: Failed}}},
	} {
		if _, err := Build(m); err == nil {
			t.Errorf("Build(%+v) succeeded", m)
		}
	}
}

func TestParseForeign(t *testing.T) {
	// A report as another MTA writes it: base64 human part, LF line ends, extra fields.
	msg := "From: MAILER-DAEMON@mx.b.test\n" +
		"Content-Type: multipart/report; report-type=\"delivery-status\";\n\tboundary=\"XX\"\n\n" +
		"--XX\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" +
		"VGhlIG1lc3NhZ2UgYm91bmNlZC4=\n" +
		"--XX\nContent-Type: message/delivery-status\n\n" +
		"Reporting-MTA: dns; mx.b.test\nX-Postfix-Queue-ID: 123\n\n" +
		"Final-Recipient: rfc822; x@b.test\nOriginal-Recipient: rfc822;X@b.test\nAction: failed\nStatus: 5.1.1\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 user\n   unknown\n\n" +
		"--XX\nContent-Type: message/rfc822\n\nSubject: orig\nFrom: a@a.test\n\nbody\n--XX--\n"
	rep, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Text != "The message bounced." {
		t.Errorf("text %q", rep.Text)
	}
	want := Recipient{FinalRecipient: "x@b.test", OriginalRecipient: "X@b.test", Action: Failed, Status: "5.1.1", DiagnosticCode: "550 5.1.1 user unknown"}
	if len(rep.Recipients) != 1 || rep.Recipients[0] != want {
		t.Errorf("recipients %+v", rep.Recipients)
	}
	if string(rep.OriginalHeader) != "Subject: orig\nFrom: a@a.test\n" {
		t.Errorf("original header %q", rep.OriginalHeader)
	}

	for _, bad := range []string{
		"Subject: hi\r\n\r\nplain",
		"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n--x--\r\n",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n\r\ntext\r\n--x--\r\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"a b c", 10, []string{"a b c"}},
		{"aaaa bbbb cccc", 9, []string{"aaaa bbbb", "cccc"}},
		{"aaaaaaaaaaaa b", 5, []string{"aaaaaaaaaaaa", "b"}},
		{"aaaaaaaaaaaa", 5, []string{"aaaaaaaaaaaa"}},
	}
	for _, tc := range tests {
		got := wrap(tc.in, tc.width)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	msg, _ := Build(&Message{ReportingMTA: "mx.a.test", To: "a@a.test", Date: t0, OriginalHeader: header,
		Recipients: []Recipient{{FinalRecipient: "b@b.test", Action: Failed, Status: "5.1.1", DiagnosticCode: "550 no"}}})
	f.Add(msg)
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(data)
		if err == nil && rep == nil {
			t.Fatal("nil report without error")
		}
	})
}

// FuzzRoundTrip checks that whatever a remote server replies, the report we build
// from it parses back to the same (cleaned) fields.
func FuzzRoundTrip(f *testing.F) {
	f.Add("b@b.test", "550 5.1.1 no such user", "mx.b.test", "5.1.1", true)
	f.Add("jörg@b.test", "450-4.2.0 a\r\n450 4.2.0 b", "", "4.2.0", false)
	f.Fuzz(func(t *testing.T, rcpt, diag, remote, status string, failed bool) {
		action := Delayed
		if failed {
			action = Failed
		}
		in := Recipient{FinalRecipient: rcpt, Action: action, Status: status, RemoteMTA: remote, DiagnosticCode: diag}
		msg, err := Build(&Message{ReportingMTA: "mx.a.test", To: "a@a.test", Date: t0, Recipients: []Recipient{in}, OriginalHeader: header})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(msg)
		if err != nil {
			t.Fatalf("parse own report: %v\n%s", err, msg)
		}
		if len(rep.Recipients) != 1 {
			t.Fatalf("recipients: %+v", rep.Recipients)
		}
		got := rep.Recipients[0]
		global := !ascii.Is(rcpt) || !ascii.Is(diag)
		// Typed fields lose everything up to their first ';' on parsing, which is
		// exactly the type we added; the value itself may hold more.
		if want := clean(diag, global); got.DiagnosticCode != strings.TrimSpace(want) {
			t.Errorf("diagnostic: got %q, want %q", got.DiagnosticCode, want)
		}
		if want := clean(status, false); got.Status != want {
			t.Errorf("status: got %q, want %q", got.Status, want)
		}
		if got.Action != action {
			t.Errorf("action %q", got.Action)
		}
	})
}
