package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/coibox/coibox/config"
	"github.com/coibox/coibox/deliver"
	"github.com/coibox/coibox/dnsx"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		in        string
		temporary bool
		wantCode  int
		wantEnh   [3]int
		wantMsg   string
	}{
		{"550 5.7.1 DMARC policy of x.example rejects this message", false, 550, [3]int{5, 7, 1}, "DMARC policy of x.example rejects this message"},
		{"554 5.7.1 No DKIM signature found", false, 554, [3]int{5, 7, 1}, "No DKIM signature found"},
		{"451 4.7.5 DKIM key of x could not be fetched, try again later", true, 451, [3]int{4, 7, 5}, "DKIM key of x could not be fetched, try again later"},
		{"550 no enhanced code", false, 550, [3]int{5, 7, 1}, "no enhanced code"},
		// A code that disagrees with the action is not trusted.
		{"250 2.0.0 ok", false, 550, [3]int{5, 7, 1}, "250 2.0.0 ok"},
		{"550 5.7.1 permanent", true, 451, [3]int{4, 7, 1}, "550 5.7.1 permanent"},
		{"garbage", false, 550, [3]int{5, 7, 1}, "garbage"},
		{"550 4.7.1 mismatched class", false, 550, [3]int{5, 7, 1}, "4.7.1 mismatched class"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := parseReply(tt.in, tt.temporary)
			if r.Code != tt.wantCode || r.Enhanced != tt.wantEnh || r.Message != tt.wantMsg {
				t.Errorf("got %d %v %q, want %d %v %q", r.Code, r.Enhanced, r.Message, tt.wantCode, tt.wantEnh, tt.wantMsg)
			}
			if r.Temporary() != tt.temporary {
				t.Errorf("Temporary() = %v", r.Temporary())
			}
		})
	}
}

// TestAuthCheckSkips checks the cases where authCheck must not consult DNS. The
// resolver points at a closed port, so a lookup would show as a temperror verdict.
func TestAuthCheckSkips(t *testing.T) {
	check := authCheck(dnsx.New("127.0.0.1:1"), "mx.example.org", slog.New(slog.DiscardHandler), nil)
	forged := "Authentication-Results: mx.example.org; spf=pass\r\nFrom: <a@b.example>\r\n\r\nhi\r\n"
	for _, tt := range []struct {
		name string
		kind deliver.Kind
		ip   string
	}{
		{"submission", deliver.Submission, "192.0.2.1"},
		{"loopback MX", deliver.MX, "127.0.0.1"},
		{"IPv6 loopback MX", deliver.MX, "::1"},
		{"IPv4-mapped loopback MX", deliver.MX, "::ffff:127.0.0.1"},
		{"no address", deliver.MX, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &deliver.Message{Envelope: deliver.Envelope{Kind: tt.kind}, Body: []byte(forged)}
			if tt.ip != "" {
				m.RemoteIP = netip.MustParseAddr(tt.ip)
			}
			v, err := check(context.Background(), m)
			if err != nil || v != nil {
				t.Errorf("verdict %+v, err %v; want none", v, err)
			}
			if strings.Contains(string(m.Body), "Authentication-Results") {
				t.Errorf("forged Authentication-Results kept:\n%s", m.Body)
			}
		})
	}
}

func TestOutboundDialer(t *testing.T) {
	cfg := config.Local()
	if outboundDialer(cfg) != nil {
		t.Error("a dialer without queue.source_ip")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Queue.SourceIP = "127.0.0.2"
	conn, err := outboundDialer(cfg)(t.Context(), "tcp", l.Addr().String())
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	}
	defer conn.Close()
	if got := conn.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("connection from %s, want 127.0.0.2", got)
	}
}

// TestAuthCheckOtherLoopback checks that a client on another loopback address (a second
// server in a federation test) is judged like any other: with DNS unreachable, the
// check defers instead of waving the message through.
func TestAuthCheckOtherLoopback(t *testing.T) {
	check := authCheck(dnsx.New("127.0.0.1:1"), "mx.example.org", slog.New(slog.DiscardHandler), nil)
	m := &deliver.Message{
		Envelope: deliver.Envelope{Kind: deliver.MX, RemoteIP: netip.MustParseAddr("127.0.0.2"), HELO: "mx.a.example", Sender: "x@a.example"},
		Body:     []byte("From: <x@a.example>\r\n\r\nhi\r\n"),
	}
	v, err := check(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil || v.Reject == nil || !v.Reject.Temporary() {
		t.Errorf("verdict %+v; want a temporary refusal (DNS unreachable)", v)
	}
}
