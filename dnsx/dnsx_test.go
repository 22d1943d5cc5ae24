package dnsx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coibox/coibox/dnsx"
	"github.com/coibox/coibox/dnsx/dnstest"
	"github.com/miekg/dns"
)

func newPair(t *testing.T, zone string) (*dnstest.Server, *dnsx.Resolver) {
	t.Helper()
	srv := dnstest.New(t)
	srv.Add(zone)
	return srv, dnsx.New(srv.Addr())
}

const zone = `
a.test.          300 IN MX    20 mx2.a.test.
a.test.          300 IN MX    10 mx1.a.test.
a.test.          300 IN TXT   "v=spf1 " "a -all"
a.test.          300 IN A     192.0.2.1
a.test.          300 IN AAAA  2001:db8::1
a.test.          300 IN CAA   0 issue "letsencrypt.org"
null.test.       300 IN MX    0 .
nomx.test.       300 IN A     192.0.2.2
alias.a.test.    300 IN CNAME a.test.
1.2.0.192.in-addr.arpa. 300 IN PTR a.test.
_25._tcp.mx1.a.test. 300 IN TLSA 3 1 1 0123456789abcdef
_imaps._tcp.a.test.  300 IN SRV 0 1 993 a.test.
_imaps._tcp.a.test.  300 IN SRV 0 5 993 b.test.
_imaps._tcp.a.test.  300 IN SRV 1 9 993 c.test.
_imap._tcp.a.test.   300 IN SRV 0 0 0 .
broken.test.     300 IN A     192.0.2.3
`

func TestLookupMX(t *testing.T) {
	srv, r := newPair(t, zone)
	srv.ServFail("broken.test")
	ctx := t.Context()
	tests := []struct {
		domain    string
		want      []string
		nullMX    bool
		notFound  bool
		temporary bool
	}{
		{domain: "a.test", want: []string{"mx1.a.test.", "mx2.a.test."}},
		{domain: "A.TEST.", want: []string{"mx1.a.test.", "mx2.a.test."}},
		{domain: "null.test", nullMX: true},
		{domain: "nomx.test", want: nil},
		{domain: "missing.test", notFound: true},
		{domain: "broken.test", temporary: true},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			mxs, err := r.LookupMX(ctx, tt.domain)
			if got := errors.Is(err, dnsx.ErrNullMX); got != tt.nullMX {
				t.Errorf("null MX = %v (err %v), want %v", got, err, tt.nullMX)
			}
			if got := dnsx.IsNotFound(err); got != tt.notFound {
				t.Errorf("IsNotFound = %v (err %v), want %v", got, err, tt.notFound)
			}
			if got := dnsx.IsTemporary(err); got != tt.temporary {
				t.Errorf("IsTemporary = %v (err %v), want %v", got, err, tt.temporary)
			}
			var hosts []string
			for _, mx := range mxs {
				hosts = append(hosts, mx.Host)
			}
			if !slices.Equal(hosts, tt.want) {
				t.Errorf("hosts = %q, want %q", hosts, tt.want)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	_, r := newPair(t, zone)
	ctx := t.Context()
	tests := []struct {
		name string
		run  func() (any, error)
		want string
	}{
		{"txt joins strings", func() (any, error) { return r.LookupTXT(ctx, "a.test") }, "[v=spf1 a -all]"},
		{"txt no data", func() (any, error) { return r.LookupTXT(ctx, "nomx.test") }, "[]"},
		{"ip both families", func() (any, error) { return r.LookupIP(ctx, "a.test") }, "[192.0.2.1 2001:db8::1]"},
		{"ip via cname", func() (any, error) { return r.LookupIP(ctx, "alias.a.test") }, "[192.0.2.1 2001:db8::1]"},
		{"ip literal", func() (any, error) { return r.LookupIP(ctx, "192.0.2.9") }, "[192.0.2.9]"},
		{"ptr", func() (any, error) { return r.LookupAddr(ctx, "192.0.2.1") }, "[a.test.]"},
		{"cname", func() (any, error) { return r.LookupCNAME(ctx, "alias.a.test") }, "a.test."},
		{"cname not alias", func() (any, error) { return r.LookupCNAME(ctx, "a.test") }, ""},
		{"caa", func() (any, error) { return r.LookupCAA(ctx, "a.test") }, "[{0 issue letsencrypt.org}]"},
		{"srv order", func() (any, error) {
			srvs, err := r.LookupSRV(ctx, "_imaps._tcp.a.test")
			var s []string
			for _, x := range srvs {
				s = append(s, x.Target)
			}
			return s, err
		}, "[b.test. a.test. c.test.]"},
		{"srv not offered", func() (any, error) { return r.LookupSRV(ctx, "_imap._tcp.a.test") }, "[]"},
		{"empty non-terminal", func() (any, error) { return r.LookupTXT(ctx, "_tcp.a.test") }, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.TrimPrefix(sprint(got), "&"); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func TestNotFoundAndInvalid(t *testing.T) {
	_, r := newPair(t, zone)
	ctx := t.Context()
	tests := []struct {
		name     string
		err      error
		notFound bool
	}{
		{"txt nxdomain", second(r.LookupTXT(ctx, "nope.test")), true},
		{"ip nxdomain", second(r.LookupIP(ctx, "nope.test")), true},
		{"ptr nxdomain", second(r.LookupAddr(ctx, "192.0.2.200")), true},
		{"invalid name", second(r.LookupTXT(ctx, "a..test")), false},
		{"bad address", second(r.LookupAddr(ctx, "not-an-ip")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var de *net.DNSError
			if !errors.As(tt.err, &de) {
				t.Fatalf("err = %#v, want *net.DNSError", tt.err)
			}
			if dnsx.IsNotFound(tt.err) != tt.notFound || dnsx.IsTemporary(tt.err) {
				t.Errorf("err %v: IsNotFound=%v IsTemporary=%v", tt.err, dnsx.IsNotFound(tt.err), dnsx.IsTemporary(tt.err))
			}
		})
	}
}

func TestTLSASecure(t *testing.T) {
	srv, r := newPair(t, zone)
	ctx := t.Context()
	name := "_25._tcp.mx1.a.test"
	recs, secure, err := r.LookupTLSA(ctx, name)
	if err != nil || len(recs) != 1 || secure {
		t.Fatalf("LookupTLSA = %v, %v, %v; want one insecure record", recs, secure, err)
	}
	if got := recs[0]; got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 ||
		string(got.Data) != "\x01\x23\x45\x67\x89\xab\xcd\xef" {
		t.Errorf("record = %+v", got)
	}
	srv.Secure(name)
	if _, secure, err = r.LookupTLSA(ctx, name); err != nil || !secure {
		t.Errorf("after Secure: secure=%v err=%v, want AD bit", secure, err)
	}
}

// A TXT answer too big for the UDP buffer comes back truncated; the resolver must
// repeat the query over TCP and return every record.
func TestTruncatedFallsBackToTCP(t *testing.T) {
	srv := dnstest.New(t)
	long := strings.Repeat("x", 250)
	for i := range 12 {
		srv.Add("big.test. 300 IN TXT \"" + string(rune('a'+i)) + long + "\"")
	}
	txts, err := dnsx.New(srv.Addr()).LookupTXT(t.Context(), "big.test")
	if err != nil || len(txts) != 12 {
		t.Fatalf("LookupTXT = %d records, %v; want 12", len(txts), err)
	}
}

// A server that never answers must give a temporary timeout error once the context
// ends, not hang for the full retry budget.
func TestTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = dnsx.New(pc.LocalAddr().String()).LookupMX(ctx, "a.test")
	if !dnsx.IsTemporary(err) || dnsx.IsNotFound(err) {
		t.Errorf("err = %v, want temporary", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAdapters(t *testing.T) {
	srv, r := newPair(t, zone)
	srv.ServFail("broken.test")
	ctx := t.Context()

	mxs, err := r.NetResolver().LookupMX(ctx, "a.test.")
	if err != nil || len(mxs) != 2 || mxs[0].Host != "mx1.a.test." {
		t.Errorf("NetResolver().LookupMX = %v, %v", mxs, err)
	}

	c := r.Compat()
	if mxs, err := c.LookupMX(ctx, "null.test"); err != nil || len(mxs) != 0 {
		t.Errorf("Compat().LookupMX(null MX) = %v, %v; want empty", mxs, err)
	}
	if addrs, err := c.LookupIPAddr(ctx, "a.test"); err != nil || len(addrs) != 2 {
		t.Errorf("Compat().LookupIPAddr = %v, %v", addrs, err)
	}

	txt := r.TXTFunc(ctx)
	for _, tt := range []struct {
		name           string
		notFound, temp bool
	}{
		{"nope.test", true, false},
		{"broken.test", false, true},
	} {
		_, err := txt(tt.name)
		de, ok := err.(*net.DNSError) // the libraries use a bare type assertion
		if !ok || de.IsNotFound != tt.notFound || de.Temporary() != tt.temp {
			t.Errorf("TXTFunc(%s) err = %#v", tt.name, err)
		}
	}
}

func TestNewSystem(t *testing.T) {
	if len(dnsx.New("").Servers()) == 0 {
		t.Error("no servers from resolv.conf or the fallback")
	}
}

func TestDnstestRemove(t *testing.T) {
	srv, r := newPair(t, zone)
	srv.Remove("a.test", dns.TypeTXT)
	if txts, err := r.LookupTXT(t.Context(), "a.test"); err != nil || len(txts) != 0 {
		t.Errorf("after removing TXT: %v, %v", txts, err)
	}
	srv.Remove("nomx.test", dns.TypeANY)
	if _, err := r.LookupIP(t.Context(), "nomx.test"); !dnsx.IsNotFound(err) {
		t.Errorf("after removing the name: err %v, want not found", err)
	}
	if srv.Queries() == 0 {
		t.Error("Queries() = 0")
	}
}

func sprint(v any) string { return fmt.Sprint(v) }

func second[T any](_ T, err error) error { return err }
