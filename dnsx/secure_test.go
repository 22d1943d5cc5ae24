package dnsx_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/coibox/coibox/dnsx"
)

func TestSecureLookups(t *testing.T) {
	srv, r := newPair(t, zone+`
signed.test.     300 IN MX    10 mx.signed.test.
mx.signed.test.  300 IN A     192.0.2.7
mx.signed.test.  300 IN AAAA  2001:db8::7
snull.test.      300 IN MX    0 .
`)
	for _, n := range []string{"signed.test", "mx.signed.test", "snull.test", "nomx.test"} {
		srv.Secure(n)
	}
	srv.ServFail("broken.test")
	ctx := t.Context()
	tests := []struct {
		name   string
		run    func() (any, bool, error)
		want   string
		secure bool
		err    func(error) bool
	}{
		{"mx signed", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "signed.test")) }, "[mx.signed.test.]", true, nil},
		{"mx unsigned", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "a.test")) }, "[mx1.a.test. mx2.a.test.]", false, nil},
		{"mx no data signed", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "nomx.test")) }, "[]", true, nil},
		{"mx null signed", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "snull.test")) }, "[]", true,
			func(err error) bool { return errors.Is(err, dnsx.ErrNullMX) }},
		{"mx not found", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "missing.test")) }, "[]", false, dnsx.IsNotFound},
		{"mx servfail", func() (any, bool, error) { return hosts(r.LookupMXSecure(ctx, "broken.test")) }, "[]", false, dnsx.IsTemporary},
		{"ip signed", func() (any, bool, error) { return r.LookupIPSecure(ctx, "mx.signed.test") }, "[192.0.2.7 2001:db8::7]", true, nil},
		{"ip unsigned", func() (any, bool, error) { return r.LookupIPSecure(ctx, "a.test") }, "[192.0.2.1 2001:db8::1]", false, nil},
		{"ip literal", func() (any, bool, error) { return r.LookupIPSecure(ctx, "192.0.2.9") }, "[192.0.2.9]", false, nil},
		{"ip not found", func() (any, bool, error) { return r.LookupIPSecure(ctx, "missing.test") }, "[]", false, dnsx.IsNotFound},
		{"ip servfail", func() (any, bool, error) { return r.LookupIPSecure(ctx, "broken.test") }, "[]", false, dnsx.IsTemporary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, secure, err := tt.run()
			if tt.err == nil && err != nil || tt.err != nil && !tt.err(err) {
				t.Fatalf("err %v", err)
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
			if secure != tt.secure {
				t.Errorf("secure %v, want %v", secure, tt.secure)
			}
		})
	}
}

func hosts(mxs []*net.MX, secure bool, err error) (any, bool, error) {
	var h []string
	for _, mx := range mxs {
		h = append(h, mx.Host)
	}
	return h, secure, err
}
