package main

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
)

// TestAuthCheckVerdicts follows DMARC's three outcomes through the pipeline check:
// aligned mail passes with our Authentication-Results, a failing message from a
// p=quarantine domain is filed to Junk with $Junk, and one from a p=reject domain is
// refused with 550 5.7.1.
func TestAuthCheckVerdicts(t *testing.T) {
	dns := dnstest.New(t)
	dns.Add(`pass.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc.pass.test. 300 IN TXT "v=DMARC1; p=reject"
quar.test. 300 IN TXT "v=spf1 ip4:192.0.2.99 -all"
_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine"
rej.test. 300 IN TXT "v=spf1 ip4:192.0.2.99 -all"
_dmarc.rej.test. 300 IN TXT "v=DMARC1; p=reject"`)
	check := authCheck(dnsx.New(dns.Addr()), "mx.example.org", slog.New(slog.DiscardHandler), nil)
	tests := []struct {
		domain      string
		wantMailbox string
		wantReject  int
		wantHeader  string
	}{
		{"pass.test", "", 0, "dmarc=pass"},
		{"quar.test", junkMailbox, 0, "dmarc=fail"},
		{"rej.test", "", 550, ""},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			body := "From: <a@" + tt.domain + ">\r\nTo: <b@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"
			m := &deliver.Message{
				Envelope: deliver.Envelope{Kind: deliver.MX, RemoteIP: netip.MustParseAddr("192.0.2.10"), HELO: "client.test", Sender: "a@" + tt.domain},
				Body:     []byte(body),
			}
			v, err := check(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantReject != 0 {
				if v == nil || v.Reject == nil || v.Reject.Code != tt.wantReject {
					t.Fatalf("want a %d refusal, got %+v", tt.wantReject, v)
				}
				return
			}
			if v == nil || v.Reject != nil {
				t.Fatalf("want acceptance, got %+v", v)
			}
			if v.Mailbox != tt.wantMailbox {
				t.Errorf("mailbox %q, want %q", v.Mailbox, tt.wantMailbox)
			}
			if tt.wantMailbox == junkMailbox && (len(v.Flags) != 1 || v.Flags[0] != junkFlag) {
				t.Errorf("flags %v, want [%s]", v.Flags, junkFlag)
			}
			if len(v.Header) != 1 || !strings.HasPrefix(v.Header[0], "Authentication-Results: mx.example.org;") || !strings.Contains(v.Header[0], tt.wantHeader) {
				t.Errorf("header %q, want one Authentication-Results with %q", v.Header, tt.wantHeader)
			}
		})
	}
}
