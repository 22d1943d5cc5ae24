// Package dnsx is the one DNS resolver every coibox lookup goes through (MX, TXT, IP, PTR,
// TLSA, …), talking to a configured server or the ones in /etc/resolv.conf.
package dnsx

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// attemptTimeout bounds one query to one server; tries is how many rounds over the
	// server list a lookup makes before it gives up with a temporary error.
	attemptTimeout = 5 * time.Second
	tries          = 2

	// ednsSize is the DNS Flag Day 2020 buffer size: large enough for most mail
	// answers, small enough to avoid IP fragmentation; bigger answers come over TCP.
	ednsSize = 1232

	resolvConf = "/etc/resolv.conf"
)

// ErrNullMX is returned by LookupMX when the domain publishes a null MX (RFC 7505):
// it accepts no mail at all, so senders bounce at once (556 5.1.10).
var ErrNullMX = errors.New("domain accepts no mail (null MX)")

// Resolver sends queries to one set of DNS servers. It is safe for concurrent use and
// keeps no cache: the recursive server it talks to does the caching.
//
// Every lookup failure is a *net.DNSError, returned unwrapped, because the mail
// libraries coibox uses (go-msgauth, blitiri spf) tell "no such domain" from "try
// later" by a type assertion on exactly that type. Use IsNotFound and IsTemporary.
//
// Names in answers are fully qualified with a trailing dot, as with package net.
// A name that exists but has no record of the asked type yields an empty answer and a
// nil error; only a name that does not exist at all (NXDOMAIN) is "not found".
type Resolver struct {
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
	cache   *cache // nil: ask every time
}

// New returns a resolver that asks server ("host:port"), or the servers listed in
// /etc/resolv.conf when server is "". Without a readable resolv.conf it falls back to
// 127.0.0.1:53, as the C library does.
func New(server string) *Resolver {
	var servers []string
	if server != "" {
		servers = []string{server}
	} else if cc, err := dns.ClientConfigFromFile(resolvConf); err == nil {
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53"}
	}
	return &Resolver{
		servers: servers,
		udp:     &dns.Client{Net: "udp", Timeout: attemptTimeout, UDPSize: ednsSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: attemptTimeout},
	}
}

// Servers returns the "host:port" addresses r sends queries to, in order.
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// IsNotFound reports whether err says the name does not exist (NXDOMAIN): a permanent
// answer, unlike a temporary failure.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// IsTemporary reports whether err is a failure worth retrying later: timeouts,
// unreachable servers, SERVFAIL and every other answer that is neither data nor NXDOMAIN.
func IsTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}

// answer is the part of a DNS response lookups care about.
type answer struct {
	rrs    []dns.RR // answer-section records of the asked type
	secure bool     // AD bit: the recursive server validated the answer with DNSSEC
}

// query asks for name/qtype, trying each server in turn for up to tries rounds.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (answer, error) {
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || strings.ContainsAny(name, " \t\r\n") || name == "" {
		return answer{}, &net.DNSError{Err: "invalid domain name", Name: name}
	}
	if a, err, ok := r.cache.get(fqdn, qtype); ok {
		return a, err
	}
	msg := new(dns.Msg)
	msg.SetQuestion(fqdn, qtype)
	// Asking with AD set makes a validating resolver report whether it validated the
	// answer (RFC 6840 5.7) without the bulk of DO and RRSIGs.
	msg.AuthenticatedData = true
	msg.SetEdns0(ednsSize, false)

	var lastErr *net.DNSError
	for range tries {
		for _, server := range r.servers {
			if err := ctx.Err(); err != nil {
				return answer{}, &net.DNSError{Err: err.Error(), Name: name, Server: server,
					IsTimeout: errors.Is(err, context.DeadlineExceeded), IsTemporary: true, UnwrapErr: err}
			}
			resp, err := r.exchange(ctx, msg, server)
			if err != nil {
				var ne net.Error
				lastErr = &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTemporary: true,
					IsTimeout: errors.As(err, &ne) && ne.Timeout(), UnwrapErr: err}
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess:
				a := answer{secure: resp.AuthenticatedData}
				for _, rr := range resp.Answer {
					if rr.Header().Rrtype == qtype {
						a.rrs = append(a.rrs, rr)
					}
				}
				r.cache.put(fqdn, qtype, resp, a)
				return a, nil
			case dns.RcodeNameError:
				r.cache.put(fqdn, qtype, resp, answer{})
				return answer{}, &net.DNSError{Err: "no such host", Name: name, Server: server, IsNotFound: true}
			default:
				// RFC 7208 5 and RFC 7489 6.6.3 both treat any other rcode as a
				// temporary error; another server may still answer.
				lastErr = &net.DNSError{Err: "server answered " + dns.RcodeToString[resp.Rcode],
					Name: name, Server: server, IsTemporary: true}
			}
		}
	}
	return answer{}, lastErr
}

// exchange sends msg over UDP and repeats it over TCP when the answer is truncated.
func (r *Resolver) exchange(ctx context.Context, msg *dns.Msg, server string) (*dns.Msg, error) {
	resp, _, err := r.udp.ExchangeContext(ctx, msg, server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, msg, server)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", server, err)
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, msg.Question[0].Name) ||
		resp.Question[0].Qtype != msg.Question[0].Qtype {
		return nil, fmt.Errorf("query %s: answer is for another question", server)
	}
	return resp, nil
}

// LookupMX returns the mail exchangers of domain, lowest preference first; hosts of
// equal preference come in random order to spread load (RFC 5321 5.1). A domain with
// no MX records yields an empty list (the caller uses the implicit MX, the domain
// itself); a null MX yields ErrNullMX.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	mxs, _, err := r.LookupMXSecure(ctx, domain)
	return mxs, err
}

// LookupTXT returns the TXT records of name, each record's strings joined together
// (RFC 7208 3.3, RFC 6376 3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	txts := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		txts = append(txts, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return txts, nil
}

// LookupIP returns the IPv4 and IPv6 addresses of host, IPv4 first. The A and AAAA
// queries run in parallel; if one fails while the other has addresses, the addresses
// win.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
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
	for _, a := range ans {
		for _, rr := range a.rrs {
			switch rr := rr.(type) {
			case *dns.A:
				ips = append(ips, rr.A)
			case *dns.AAAA:
				ips = append(ips, rr.AAAA)
			}
		}
	}
	if len(ips) > 0 {
		return ips, nil
	}
	// Prefer NXDOMAIN over a temporary error: it is an authoritative statement that
	// the name does not exist at all.
	for _, err := range errs {
		if IsNotFound(err) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// LookupAddr returns the PTR names of the IP address addr ("192.0.2.1" or "2001:db8::1").
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	a, err := r.query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		names = append(names, rr.(*dns.PTR).Ptr)
	}
	return names, nil
}

// LookupCNAME returns the target of the CNAME record at name, or "" when name exists
// but is not an alias. It follows one link, not the whole chain: callers check how a
// name is published, not where it finally leads.
func (r *Resolver) LookupCNAME(ctx context.Context, name string) (string, error) {
	a, err := r.query(ctx, name, dns.TypeCNAME)
	if err != nil {
		return "", err
	}
	for _, rr := range a.rrs {
		if strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
			return rr.(*dns.CNAME).Target, nil
		}
	}
	return "", nil
}

// TLSA is one DANE record (RFC 6698).
type TLSA struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	Data         []byte // certificate association data
}

// LookupTLSA returns the TLSA records at name (e.g. "_25._tcp.mx.example.org") and
// whether the answer was DNSSEC-validated (the AD bit). DANE may only use records
// from a validated answer (RFC 7672 2.2), and trusting the AD bit is only sound when
// the configured server is a validating resolver reached over a trusted path.
func (r *Resolver) LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error) {
	a, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	recs := make([]TLSA, 0, len(a.rrs))
	for _, rr := range a.rrs {
		t := rr.(*dns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue // unusable record; RFC 7672 2.2 says to ignore it
		}
		recs = append(recs, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return recs, a.secure, nil
}

// CAA is one certification authority authorization record (RFC 8659).
type CAA struct {
	Flag  uint8
	Tag   string
	Value string
}

// LookupCAA returns the CAA records published exactly at name (no tree climbing).
func (r *Resolver) LookupCAA(ctx context.Context, name string) ([]CAA, error) {
	a, err := r.query(ctx, name, dns.TypeCAA)
	if err != nil {
		return nil, err
	}
	recs := make([]CAA, 0, len(a.rrs))
	for _, rr := range a.rrs {
		c := rr.(*dns.CAA)
		recs = append(recs, CAA{Flag: c.Flag, Tag: c.Tag, Value: c.Value})
	}
	return recs, nil
}

// LookupSRV returns the SRV records at name (e.g. "_submissions._tcp.example.org"),
// lowest priority first and, within a priority, heaviest weight first. A single
// target of "." means the service is decidedly not offered (RFC 2782) and yields an
// empty list.
func (r *Resolver) LookupSRV(ctx context.Context, name string) ([]*net.SRV, error) {
	a, err := r.query(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	srvs := make([]*net.SRV, 0, len(a.rrs))
	for _, rr := range a.rrs {
		s := rr.(*dns.SRV)
		if s.Target == "." {
			continue
		}
		srvs = append(srvs, &net.SRV{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
	}
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int {
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return int(b.Weight) - int(a.Weight)
	})
	return srvs, nil
}
