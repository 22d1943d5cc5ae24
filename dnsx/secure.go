package dnsx

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"sync"

	"github.com/miekg/dns"
)

// LookupMXSecure is LookupMX that also reports whether the answer was
// DNSSEC-validated (the AD bit), which DANE needs to know of the MX RRset (RFC 7672
// 2.2.1). A domain without MX records reports whether that "no data" answer was
// validated.
func (r *Resolver) LookupMXSecure(ctx context.Context, domain string) ([]*net.MX, bool, error) {
	a, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, false, err
	}
	var mxs []*net.MX
	null := false
	for _, rr := range a.rrs {
		mx := rr.(*dns.MX)
		if mx.Mx == "." {
			null = true
			continue
		}
		mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	// A null MX must be the only record (RFC 7505 3); if it is mixed with real
	// hosts, the hosts are the better guess at what the owner wants.
	if null && len(mxs) == 0 {
		return nil, a.secure, ErrNullMX
	}
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return mxs, a.secure, nil
}

// LookupIPSecure is LookupIP that also reports whether the addresses were
// DNSSEC-validated: every A and AAAA answer that came back (data or "no data") had
// the AD bit. A family whose lookup failed contributes no addresses and, as in
// LookupIP, does not spoil the other; an IP literal is not secure.
func (r *Resolver) LookupIPSecure(ctx context.Context, host string) ([]net.IP, bool, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, false, nil
	}
	var (
		wg   sync.WaitGroup
		ans  [2]answer
		errs [2]error
	)
	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() { ans[i], errs[i] = r.query(ctx, host, qtype) })
	}
	wg.Wait()
	var ips []net.IP
	secure, answered := true, false
	for i, a := range ans {
		if errs[i] != nil {
			continue
		}
		answered = true
		secure = secure && a.secure
		for _, rr := range a.rrs {
			switch rr := rr.(type) {
			case *dns.A:
				ips = append(ips, rr.A)
			case *dns.AAAA:
				ips = append(ips, rr.AAAA)
			}
		}
	}
	secure = secure && answered
	if len(ips) > 0 {
		return ips, secure, nil
	}
	for _, err := range errs {
		if IsNotFound(err) {
			return nil, false, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, false, err
		}
	}
	return nil, secure, nil
}
