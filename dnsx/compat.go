package dnsx

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
)

// NetResolver returns a *net.Resolver whose queries go to r's servers, for libraries
// that take one. It uses Go's own resolver (search list, /etc/hosts and caching rules of
// package net), so prefer r's methods where there is a choice.
func (r *Resolver) NetResolver() *net.Resolver {
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			// Go's resolver dials once per server it read from resolv.conf; rotate
			// through ours instead so a dead first server is skipped on retry.
			server := r.servers[int(next.Add(1)-1)%len(r.servers)]
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// Compat is r seen through *net.Resolver's method signatures, which is what
// blitiri.com.ar/go/spf's DNSResolver interface asks for.
type Compat struct{ r *Resolver }

// Compat returns r with the method set of *net.Resolver that SPF evaluation uses.
func (r *Resolver) Compat() Compat { return Compat{r} }

// LookupTXT is Resolver.LookupTXT.
func (c Compat) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return c.r.LookupTXT(ctx, name)
}

// LookupMX is Resolver.LookupMX, except that a null MX is an empty answer: for SPF's
// "mx" mechanism it simply matches no address.
func (c Compat) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := c.r.LookupMX(ctx, name)
	if errors.Is(err, ErrNullMX) {
		return nil, nil
	}
	return mxs, err
}

// LookupIPAddr is Resolver.LookupIP in net.IPAddr form.
func (c Compat) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := c.r.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		addrs[i] = net.IPAddr{IP: ip}
	}
	return addrs, nil
}

// LookupAddr is Resolver.LookupAddr.
func (c Compat) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return c.r.LookupAddr(ctx, addr)
}

// TXTFunc returns a context-free TXT lookup bound to ctx, the shape go-msgauth wants
// for dkim.VerifyOptions.LookupTXT and dmarc.LookupOptions.LookupTXT. Its errors are
// always a bare *net.DNSError, which those packages inspect by type assertion.
func (r *Resolver) TXTFunc(ctx context.Context) func(name string) ([]string, error) {
	return func(name string) ([]string, error) {
		txts, err := r.LookupTXT(ctx, name)
		if err == nil {
			return txts, nil
		}
		var de *net.DNSError
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, UnwrapErr: err}
	}
}
